package meshsim

import (
	"context"
	"fmt"
)

// startXDS starts the sidecars' xDS clients and waits until each has its
// first routes and endpoints from istiod.
func (s *Sim) startXDS(ctx context.Context, o Options) error {
	ps, err := startProxies(ctx, o.RESTConfig, o.XDSAddr, s.cat, s.log, func(workload, typ, result string) {
		s.metrics.xdsPushes.WithLabelValues(s.cat.namespace, workload, typ, result).Inc()
	})
	if err != nil {
		return err
	}
	s.proxies = ps
	s.router.lookup = s.workloadByKey
	s.router.xds = ps
	if err := ps.waitReady(ctx, o.XDSAddr); err != nil {
		return err
	}
	s.log.Info("sidecars configured by istiod", "xds", o.XDSAddr, "proxies", len(ps.statuses()))
	return nil
}

// Proxies returns the status of every simulated sidecar subscribed to
// istiod, by workload: its node ID, the route version it accepted, when
// each arrived and the weighted clusters per host. It is empty unless
// Options.XDSAddr is set.
func (s *Sim) Proxies() []ProxyStatus {
	if s.proxies == nil {
		return []ProxyStatus{}
	}
	return s.proxies.statuses()
}

// SetProxyFrozen freezes (or thaws) the sidecar of workload, as a stuck
// Envoy: frozen, it keeps its last configuration and neither applies nor
// ACKs what istiod pushes; thawed, it applies and ACKs the latest push. The
// error wraps ErrUnknownWorkload for a name no workload has, and ErrNoProxy
// when the workload has no sidecar (no Options.XDSAddr, or no Pod).
func (s *Sim) SetProxyFrozen(workload string, frozen bool) error {
	if !s.knownWorkload(workload) {
		return fmt.Errorf("freeze sidecar: %w %q in namespace %s", ErrUnknownWorkload, workload, s.cat.namespace)
	}
	if s.proxies == nil {
		return fmt.Errorf("freeze sidecar of %s: %w: Options.XDSAddr is not set", workload, ErrNoProxy)
	}
	if err := s.proxies.setFrozen(workload, frozen); err != nil {
		return fmt.Errorf("freeze sidecar: %w", err)
	}
	s.log.Info("sidecar frozen state set", "workload", workload, "frozen", frozen)
	return nil
}

// knownWorkload reports whether name is a static workload or a current
// Deployment workload.
func (s *Sim) knownWorkload(name string) bool {
	if _, ok := s.cat.workloads[name]; ok {
		return true
	}
	for _, w := range s.router.topo.Load().workloads() {
		if w.name() == name {
			return true
		}
	}
	return false
}
