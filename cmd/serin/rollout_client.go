package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/api"
)

// maxResponseBytes bounds what the CLI reads of one answer.
const maxResponseBytes = 8 << 20

// apiClient talks to serin's REST API (/api/v1) with a bearer token. The
// token goes only into the Authorization header: no error, log line or
// output of the client contains it.
type apiClient struct {
	base    *url.URL // scheme and host, no path
	token   string
	timeout time.Duration // for each request; 0 means none
	http    *http.Client
}

// apiError is an error answer of the API: its status and its JSON body.
type apiError struct {
	Status int
	Body   api.ErrorBody
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Body.Error, e.Status)
}

// newAPIClient checks the server URL: it must be http or https with a host.
func newAPIClient(server, token string, timeout time.Duration) (*apiClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http:// or https:// URL with a host", server)
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = strings.TrimSuffix(u.Path, "/"), "", "", ""
	return &apiClient{base: u, token: token, timeout: timeout, http: &http.Client{}}, nil
}

// rolloutPath is the API path of one rollout, with op appended when set.
func rolloutPath(ns, name, op string) string {
	p := "/api/v1/rollouts/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	if op != "" {
		p += "/" + op
	}
	return p
}

// newRequest builds a request to path with query q and a JSON body (when
// body is not nil).
func (c *apiClient) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends one request and decodes a 2xx answer into out. Any other
// status is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return errorFromAnswer(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// errorFromAnswer makes the *apiError of a non-2xx answer. A body that is
// not the API's error shape (a proxy's HTML page, say) still gives the
// status.
func errorFromAnswer(status int, data []byte) *apiError {
	e := &apiError{Status: status}
	if err := json.Unmarshal(data, &e.Body); err != nil || e.Body.Error == "" {
		e.Body = api.ErrorBody{Error: http.StatusText(status)}
	}
	return e
}

// isStatus reports whether err is an API answer with the given status.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// Create starts a rollout: POST /api/v1/rollouts.
func (c *apiClient) Create(ctx context.Context, req api.CreateRequest) (api.Rollout, error) {
	var out api.Rollout
	err := c.do(ctx, http.MethodPost, "/api/v1/rollouts", nil, req, &out)
	return out, err
}

// List lists rollouts, filtered by namespace and phase when they are set:
// every page of GET /api/v1/rollouts, followed by its continue tokens, in
// the API's order (active rollouts first, then by namespace and name).
func (c *apiClient) List(ctx context.Context, ns, phase string) (api.RolloutList, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if phase != "" {
		q.Set("phase", phase)
	}
	q.Set("limit", strconv.Itoa(api.MaxListLimit))
	out := api.RolloutList{Items: []api.RolloutSummary{}}
	for {
		var page api.RolloutList
		if err := c.do(ctx, http.MethodGet, "/api/v1/rollouts", q, nil, &page); err != nil {
			return api.RolloutList{}, err
		}
		out.Items = append(out.Items, page.Items...)
		if page.Continue == "" {
			return out, nil
		}
		q.Set("continue", page.Continue)
	}
}

// Get reads one rollout.
func (c *apiClient) Get(ctx context.Context, ns, name string) (api.Rollout, error) {
	var out api.Rollout
	err := c.do(ctx, http.MethodGet, rolloutPath(ns, name, ""), nil, nil, &out)
	return out, err
}

// Act posts one of the actions pause, resume or promote, or abort with
// body. It returns the rollout as changed.
func (c *apiClient) Act(ctx context.Context, ns, name, op string, body any) (api.Rollout, error) {
	var out api.Rollout
	err := c.do(ctx, http.MethodPost, rolloutPath(ns, name, op), nil, body, &out)
	return out, err
}

// Events opens the rollout's Server-Sent Events stream. The request's
// context is ctx: cancelling it closes the stream. The caller closes the
// body. An answer other than 200 is an *apiError.
func (c *apiClient) Events(ctx context.Context, ns, name string) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, rolloutPath(ns, name, "events"), nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return nil, errorFromAnswer(resp.StatusCode, data)
	}
	return resp.Body, nil
}
