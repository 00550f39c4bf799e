package e2e

// BenchmarkHealthzUnderIdleConnections: the controller's HTTP server is
// also the process that rolls canaries back, so a crowd of idle clients
// must not slow what it serves. Loopback only, bounded: 2,000 connections
// to one serin binary, a few hundred requests.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

const (
	idleConns     = 2000
	idleRequests  = 300 // /healthz requests measured per case
	idleDialers   = 50  // connections opened at once
	idleReadLimit = 10 * time.Second
)

// openIdle opens n connections to addr, each sending one kept-alive GET
// /healthz and reading its answer, then staying open and silent: what a
// pool of idle clients leaves behind. The caller closes them.
func openIdle(b *testing.B, addr string, n int) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range idleDialers {
		wg.Go(func() {
			for i := range next {
				c, err := net.DialTimeout("tcp", addr, idleReadLimit)
				if err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
					continue
				}
				conns[i] = c
				_ = c.SetDeadline(time.Now().Add(idleReadLimit))
				fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: serin\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_ = c.SetDeadline(time.Time{})
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return conns
}

// healthzLatencies times idleRequests GET /healthz with c.
func healthzLatencies(b *testing.B, c *http.Client, addr string) []float64 {
	b.Helper()
	out := make([]float64, 0, idleRequests)
	for range idleRequests {
		start := time.Now()
		resp, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			b.Fatalf("GET /healthz: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /healthz: %s", resp.Status)
		}
		out = append(out, float64(time.Since(start).Microseconds())/1000)
	}
	return out
}

func BenchmarkHealthzUnderIdleConnections(b *testing.B) {
	e := newEnv(b)
	p := e.startController()
	kept := &http.Client{Timeout: idleReadLimit, Transport: &http.Transport{}}
	fresh := &http.Client{Timeout: idleReadLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	type result struct {
		load, conn string
		ms         []float64
	}
	var results []result
	measure := func(load string) {
		for _, c := range []struct {
			name string
			cl   *http.Client
		}{{"kept-alive", kept}, {"new each", fresh}} {
			results = append(results, result{load, c.name, healthzLatencies(b, c.cl, p.addr)})
		}
	}
	b.ResetTimer()
	for range b.N {
		results = results[:0]
		measure("none")
		start := time.Now()
		conns := openIdle(b, p.addr, idleConns)
		opened := time.Since(start)
		measure(fmt.Sprintf("%d idle", idleConns))
		for _, c := range conns {
			c.Close()
		}
		b.Logf("%d idle connections opened in %v", idleConns, opened.Round(time.Millisecond))
	}
	b.StopTimer()
	rows := make([]string, 0, len(results))
	for _, r := range results {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t", r.load, r.conn, len(r.ms),
			percentile(r.ms, 50), percentile(r.ms, 99), percentile(r.ms, 100)))
	}
	table(fmt.Sprintf("BenchmarkHealthzUnderIdleConnections: GET /healthz on the serin binary, loopback, with and without %d idle kept-alive connections", idleConns),
		"idle load\tconnection\trequests\tp50 (ms)\tp99 (ms)\tmax (ms)\t", rows)
	loaded := results[len(results)-2:]
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(percentile(loaded[0].ms, 50), "p50_ms")
	b.ReportMetric(percentile(loaded[0].ms, 99), "p99_ms")
	b.ReportMetric(percentile(loaded[1].ms, 99), "p99_new_conn_ms")
}
