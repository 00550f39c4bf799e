package meshsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxControlBody bounds a control request body.
const maxControlBody = 64 << 10

// loadBody is the JSON of GET and PUT /load.
type loadBody struct {
	RPS *float64 `json:"rps"`
}

// controlHandler serves the control API:
//
//	GET    /faults                     all faults, keyed "service/version"
//	PUT    /faults/{service}/{version} set one fault (a Fault as JSON)
//	DELETE /faults/{service}/{version} clear one fault
//	DELETE /faults                     clear all faults
//	GET    /load, PUT /load            the background rate, {"rps": 50}
//	GET    /workloads                  workload name → listen address
//	GET    /unready                    requests to workloads with no ready pod (UnreadyRequests)
//	GET    /proxies                    the sidecars subscribed to istiod (Proxies)
//	PUT    /proxies/{workload}/frozen  freeze or thaw a sidecar, {"frozen": true} (SetProxyFrozen)
//	GET    /healthz                    "ok"
//
// Bad input is answered 400 (404 for an unknown workload, 409 for a
// workload without a sidecar) with a message naming what is wrong, and
// changes nothing.
func (s *Sim) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.faults.list())
	})
	mux.HandleFunc("PUT /faults/{service}/{version}", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeStrict(r.Body, &f); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("fault body: %w", err))
			return
		}
		if err := s.SetFault(r.PathValue("service"), r.PathValue("version"), f); err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /faults/{service}/{version}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.SetFault(r.PathValue("service"), r.PathValue("version"), Fault{}); err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /load", func(w http.ResponseWriter, _ *http.Request) {
		rps := s.load.rps()
		writeJSON(w, http.StatusOK, loadBody{RPS: &rps})
	})
	mux.HandleFunc("PUT /load", s.putLoad)
	mux.HandleFunc("GET /workloads", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.WorkloadAddrs())
	})
	mux.HandleFunc("GET /unready", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.UnreadyRequests())
	})
	mux.HandleFunc("GET /proxies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Proxies())
	})
	mux.HandleFunc("PUT /proxies/{workload}/frozen", s.putFrozen)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// putLoad sets the background rate from {"rps": N}.
func (s *Sim) putLoad(w http.ResponseWriter, r *http.Request) {
	var b loadBody
	if err := decodeStrict(r.Body, &b); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("load body: %w", err))
		return
	}
	if b.RPS == nil || *b.RPS < 0 || *b.RPS > MaxRPS {
		writeError(w, http.StatusBadRequest, fmt.Errorf("load body: rps must be given and in [0,%d]", MaxRPS))
		return
	}
	s.SetRPS(*b.RPS)
	writeJSON(w, http.StatusOK, b)
}

// frozenBody is the JSON of PUT /proxies/{workload}/frozen.
type frozenBody struct {
	Frozen *bool `json:"frozen"`
}

// putFrozen freezes or thaws a workload's sidecar from {"frozen": true}.
func (s *Sim) putFrozen(w http.ResponseWriter, r *http.Request) {
	var b frozenBody
	if err := decodeStrict(r.Body, &b); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("frozen body: %w", err))
		return
	}
	if b.Frozen == nil {
		writeError(w, http.StatusBadRequest, errors.New(`frozen body: "frozen" must be given`))
		return
	}
	if err := s.SetProxyFrozen(r.PathValue("workload"), *b.Frozen); err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, ErrUnknownWorkload):
			code = http.StatusNotFound
		case errors.Is(err, ErrNoProxy):
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// faultStatus maps a SetFault error to an HTTP status.
func faultStatus(err error) int {
	if errors.Is(err, ErrUnknownWorkload) {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	if dec.More() {
		return errors.New("decode JSON: trailing data after the object")
	}
	return nil
}

// writeJSON writes v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": "..."} with status code.
func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
