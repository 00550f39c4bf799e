package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPServerHasLimits(t *testing.T) {
	var ready atomic.Bool
	srv := newHTTPServer(t.Context(), httpMux(&ready), defaultHTTPLimits)
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s = %v, want a bound", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes >= http.DefaultMaxHeaderBytes {
		t.Errorf("MaxHeaderBytes = %d, want a bound below net/http's 1 MiB", srv.MaxHeaderBytes)
	}
	if srv.ReadHeaderTimeout > srv.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v > ReadTimeout %v", srv.ReadHeaderTimeout, srv.ReadTimeout)
	}
}

// limitsServer serves the controller's mux, and /echo that reads its
// body, with l on loopback; it returns the address.
func limitsServer(t *testing.T, l httpLimits) string {
	t.Helper()
	var ready atomic.Bool
	mux := httpMux(&ready)
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		_, _ = w.Write(b)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := newHTTPServer(ctx, mux, l)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { cancel(); _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes conn within d, reading
// (and discarding) whatever it sends first.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestHTTPServerClosesIdleConnections: a kept-alive connection is closed
// after IdleTimeout, not kept for good.
func TestHTTPServerClosesIdleConnections(t *testing.T) {
	l := defaultHTTPLimits
	l.Idle = 200 * time.Millisecond
	conn := dial(t, limitsServer(t, l))
	br := bufio.NewReader(conn)
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: serin\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %s, close %v; want 200 on a kept-alive connection", resp.Status, resp.Close)
	}
	start := time.Now()
	if !closedWithin(conn, 5*time.Second) {
		t.Fatalf("the idle connection is still open after 5 s, with IdleTimeout %v", l.Idle)
	}
	if took := time.Since(start); took < l.Idle/2 {
		t.Errorf("the idle connection was closed after %v, before IdleTimeout %v", took, l.Idle)
	}
}

// TestHTTPServerCutsSlowRequests: a client that sends its headers or its
// body slowly, or too many headers, is cut off.
func TestHTTPServerCutsSlowRequests(t *testing.T) {
	l := defaultHTTPLimits
	l.ReadHeader, l.Read = 200*time.Millisecond, 400*time.Millisecond
	addr := limitsServer(t, l)

	silent := dial(t, addr)
	if !closedWithin(silent, 5*time.Second) {
		t.Error("a connection that sends nothing is still open after 5 s")
	}

	slowBody := dial(t, addr)
	fmt.Fprint(slowBody, "POST /echo HTTP/1.1\r\nHost: serin\r\nContent-Length: 100\r\n\r\nonly part of it")
	if !closedWithin(slowBody, 5*time.Second) {
		t.Error("a request whose body never arrives is still open after 5 s")
	}

	big := dial(t, addr)
	fmt.Fprintf(big, "GET /healthz HTTP/1.1\r\nHost: serin\r\nX-Big: %s\r\n\r\n", strings.Repeat("x", 2*l.MaxHeaderBytes))
	resp, err := http.ReadResponse(bufio.NewReader(big), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: %s, want 431", 2*l.MaxHeaderBytes, resp.Status)
	}
}
