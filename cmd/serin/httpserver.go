package main

import (
	"context"
	"net"
	"net/http"
	"time"
)

// httpLimits bound what one connection may cost the controller's HTTP
// server, the process that also has to roll canaries back: no client may
// hold a connection, a goroutine or a buffer for long by sending slowly,
// reading slowly or saying nothing.
type httpLimits struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included (bodies are at
	// most api.DefaultMaxBodyBytes).
	Read time.Duration
	// Write bounds writing an answer, from the end of the request's
	// headers. The SSE streams outlive it: they set a deadline per write
	// (api.Options.StreamWriteTimeout).
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next
	// request.
	Idle time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// defaultHTTPLimits leave room for the slowest plain request (a create
// that waits up to 5 s to read its own write, a /metrics scrape) and
// little more.
var defaultHTTPLimits = httpLimits{
	ReadHeader:     5 * time.Second,
	Read:           30 * time.Second,
	Write:          30 * time.Second,
	Idle:           90 * time.Second,
	MaxHeaderBytes: 64 << 10,
}

// newHTTPServer returns the controller's HTTP server for h, with limits.
// Request contexts end with ctx, so that open event streams do not hold up
// the shutdown.
func newHTTPServer(ctx context.Context, h http.Handler, l httpLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}
