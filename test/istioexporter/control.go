package istioexporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxControlBody bounds a control request body.
const maxControlBody = 64 << 10

// controlHandler serves the control API:
//
//	GET    /faults                     every fault, keyed "service/version"
//	PUT    /faults/{service}/{version} set one fault (a Fault as JSON)
//	DELETE /faults/{service}/{version} clear one fault
//	DELETE /faults                     clear every fault
//	GET    /weights                    service → canary weight in effect (-1: no route)
//	GET    /healthz                    "ok"
//
// Bad input is answered 400 (404 for an unknown service or version) with
// a message naming what is wrong, and changes nothing.
func (e *Exporter) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Faults())
	})
	mux.HandleFunc("PUT /faults/{service}/{version}", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeStrict(r.Body, &f); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("fault body: %w", err))
			return
		}
		if err := e.SetFault(r.PathValue("service"), r.PathValue("version"), f); err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /faults/{service}/{version}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.SetFault(r.PathValue("service"), r.PathValue("version"), Fault{}); err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /weights", func(w http.ResponseWriter, _ *http.Request) {
		out := make(map[string]int32, len(e.services))
		for _, s := range e.services {
			out[s.name] = s.canary.Load()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
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
