package istioadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// This file reads istiod's debug API (the --httpAddr of pilot-discovery,
// port 15014 in an Istio install): /debug/syncz lists the connected
// proxies with the xDS nonces sent to and acknowledged by each, and
// /debug/config_dump?proxyID=ID the configuration istiod last pushed to
// one proxy, in Envoy's admin ConfigDump form.

// syncStatus is one connected proxy in /debug/syncz.
type syncStatus struct {
	ProxyID    string `json:"proxy"`
	ProxyType  string `json:"proxy_type"`
	RouteSent  string `json:"route_sent"`
	RouteAcked string `json:"route_acked"`
}

// istiodClient asks one istiod.
type istiodClient struct {
	base   *url.URL
	client *http.Client
	// tokenFile holds the bearer token sent with each request, read
	// afresh each time (a projected service-account token rotates); ""
	// sends none.
	tokenFile string
}

func newIstiodClient(rawURL, tokenFile string, c *http.Client) (*istiodClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("istiod URL %q: want http(s)://host:port of istiod's debug API", rawURL)
	}
	return &istiodClient{base: u, client: c, tokenFile: tokenFile}, nil
}

// get GETs path with query q and decodes the JSON answer into out.
func (c *istiodClient) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if c.tokenFile != "" {
		// istiod answers its debug API on 127.0.0.1 only unless the caller
		// authenticates as its proxies do: a service-account token for the
		// audience istio-ca, from a namespace it allows.
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("read the istiod token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// A config dump of a large mesh runs to megabytes; 64 MiB bounds it.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", u.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u.Path, resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode %s: %w", u.Path, err)
	}
	return nil
}

// syncz lists the connected proxies.
func (c *istiodClient) syncz(ctx context.Context) ([]syncStatus, error) {
	var out []syncStatus
	if err := c.get(ctx, "/debug/syncz", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// The parts of Envoy's admin ConfigDump that say how a proxy routes, in
// the protobuf JSON (lowerCamelCase) that istiod writes.
type (
	configDump struct {
		Configs []json.RawMessage `json:"configs"`
	}
	typed struct {
		Type string `json:"@type"`
	}
	routesDump struct {
		Dynamic []struct {
			VersionInfo string      `json:"versionInfo"`
			RouteConfig routeConfig `json:"routeConfig"`
		} `json:"dynamicRouteConfigs"`
	}
	routeConfig struct {
		Name         string `json:"name"`
		VirtualHosts []struct {
			Name    string       `json:"name"`
			Domains []string     `json:"domains"`
			Routes  []envoyRoute `json:"routes"`
		} `json:"virtualHosts"`
	}
	envoyRoute struct {
		Name     string `json:"name"`
		Metadata struct {
			FilterMetadata struct {
				Istio struct {
					// Config is the path of the VirtualService the route
					// was built from: /apis/networking.istio.io/v1/
					// namespaces/NS/virtual-service/NAME.
					Config string `json:"config"`
				} `json:"istio"`
			} `json:"filterMetadata"`
		} `json:"metadata"`
		Route *struct {
			Cluster          string `json:"cluster"`
			WeightedClusters *struct {
				Clusters []struct {
					Name   string `json:"name"`
					Weight uint32 `json:"weight"`
				} `json:"clusters"`
			} `json:"weightedClusters"`
		} `json:"route"`
	}
)

const routesDumpType = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"

// proxyRoutes is how one proxy routes, as istiod last pushed it.
type proxyRoutes struct {
	// version is istiod's push version of the dump ("2026-12-01T20:30:00Z/7").
	version string
	// byVS holds, per VirtualService ("ns/name"), its routes on this proxy.
	byVS map[string][]vsRoute
}

// vsRoute is one Envoy route built from a VirtualService http route.
type vsRoute struct {
	name     string
	clusters []clusterWeight
}

type clusterWeight struct {
	cluster string // outbound|PORT|SUBSET|FQDN
	weight  uint32
}

// configDump reads how proxy id routes.
func (c *istiodClient) configDump(ctx context.Context, id string) (proxyRoutes, error) {
	var d configDump
	if err := c.get(ctx, "/debug/config_dump", url.Values{"proxyID": {id}}, &d); err != nil {
		return proxyRoutes{}, err
	}
	return parseRoutes(d)
}

// parseRoutes picks the routes out of a config dump.
func parseRoutes(d configDump) (proxyRoutes, error) {
	pr := proxyRoutes{byVS: map[string][]vsRoute{}}
	for _, raw := range d.Configs {
		var t typed
		if err := json.Unmarshal(raw, &t); err != nil || t.Type != routesDumpType {
			continue
		}
		var rd routesDump
		if err := json.Unmarshal(raw, &rd); err != nil {
			return proxyRoutes{}, fmt.Errorf("decode the routes of a config dump: %w", err)
		}
		for _, dyn := range rd.Dynamic {
			if pr.version == "" {
				pr.version = dyn.VersionInfo
			}
			for _, vh := range dyn.RouteConfig.VirtualHosts {
				for _, r := range vh.Routes {
					vs := vsOfConfigPath(r.Metadata.FilterMetadata.Istio.Config)
					if vs == "" || r.Route == nil {
						continue
					}
					pr.byVS[vs] = append(pr.byVS[vs], vsRoute{name: r.Name, clusters: clustersOf(r)})
				}
			}
		}
	}
	return pr, nil
}

func clustersOf(r envoyRoute) []clusterWeight {
	if wc := r.Route.WeightedClusters; wc != nil {
		out := make([]clusterWeight, 0, len(wc.Clusters))
		for _, c := range wc.Clusters {
			out = append(out, clusterWeight{c.Name, c.Weight})
		}
		return out
	}
	if r.Route.Cluster != "" {
		return []clusterWeight{{r.Route.Cluster, 100}}
	}
	return nil
}

// vsOfConfigPath turns istiod's config path of a route into "ns/name", or
// "" when it is not a VirtualService.
func vsOfConfigPath(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	// apis networking.istio.io v1 namespaces NS virtual-service NAME
	if len(parts) != 7 || parts[3] != "namespaces" || parts[5] != "virtual-service" {
		return ""
	}
	return parts[4] + "/" + parts[6]
}

// pushCounter is the counter of istiod's push version in a version
// ("2026-12-01T20:30:00Z/7") or a nonce (the version followed by a
// 36-character UUID), or -1 when there is none. istiod numbers its pushes
// in the order it computes them, each from the configuration it holds at
// that moment.
func pushCounter(s string) int64 {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		digits := s[i+1:]
		if n := len(digits); n > 36 && digits[n-36+8] == '-' {
			digits = digits[:n-36] // a nonce: strip the UUID
		}
		if n, err := strconv.ParseInt(digits, 10, 64); err == nil {
			return n
		}
	}
	return -1
}
