package e2e

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The Lease of leader election, in serin's namespace as deploy/rbac.yaml
// grants it: one HA test at a time.
const (
	leaseNamespace = "serin-system"
	leaseName      = "serin-controller.serin.dev"
)

// haEnv prepares two replicas' worth of flags: leader election, one
// session key, the API and console on static tokens. Any Lease a killed
// leader of an earlier test left is deleted, so that the first replica
// leads at once.
func haEnv(t testing.TB) *env {
	t.Helper()
	e := newEnv(t)
	e.mesh(nil)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(apiOperator+",olga,operator\n"+apiViewer+",victor,viewer\n"), 0o600))
	key := make([]byte, 32)
	_, err := rand.Read(key)
	must(t, err)
	keyFile := filepath.Join(dir, "session-key")
	must(t, os.WriteFile(keyFile, key, 0o600))
	e.analysisArgs = []string{"--no-analysis", "--auth", "static", "--api-token-file", tokens}
	e.extraArgs = []string{"--leader-elect", "--leader-election-namespace", leaseNamespace, "--session-key-file", keyFile}
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	must(t, err)
	err = kc.CoordinationV1().Leases(leaseNamespace).Delete(e.ctx, leaseName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return e
}

// startPair starts two replicas and returns the leader first, once one
// leads.
func (e *env) startPair() (leader, standby *controllerProc) {
	e.t.Helper()
	a := e.startController()
	e.eventually(30*time.Second, "the first replica to lead", func() (bool, string) { return leads(a), "" })
	b := e.startController()
	if leads(b) {
		e.t.Fatal("both replicas lead")
	}
	return a, b
}

// leads reports whether the controller says it holds the Lease
// (controller-runtime's leader_election_master_status gauge).
func leads(p *controllerProc) bool {
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() == `leader_election_master_status{name="`+leaseName+`"} 1` {
			return true
		}
	}
	return false
}

// consoleClient is a browser of the console: a cookie jar (cookies are
// per host, not port, so one session serves both replicas on 127.0.0.1)
// and no redirects followed.
func consoleClient(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	must(t, err)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var (
	formCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
)

// consoleSignIn fetches the login form from one replica and posts it to
// the other, as a Service may route them.
func consoleSignIn(t testing.TB, c *http.Client, formFrom, postTo *controllerProc, token string) {
	t.Helper()
	code, page := consoleGet(t, c, formFrom, "/login")
	m := formCSRF.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("login form on %s: %d, CSRF field found %v", formFrom.addr, code, m != nil)
	}
	resp, err := c.PostForm("http://"+postTo.addr+"/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/"}})
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in with the form of %s posted to %s: %s to %q, want 303 to /", formFrom.addr, postTo.addr, resp.Status, resp.Header.Get("Location"))
	}
}

func consoleGet(t testing.TB, c *http.Client, p *controllerProc, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sessionPost sends a POST through the session, with csrf in the
// X-CSRF-Token header unless it is empty.
func sessionPost(t testing.TB, c *http.Client, p *controllerProc, path, csrf string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+path, strings.NewReader("{}"))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// servingLog counts a replica's answers to the session's requests while
// it runs, and keeps the first failures.
type servingLog struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firsts     []string
}

// serveAllAlong asks p, through the session, for the rollout's API view
// and its console page every 200 ms until the returned stop is called.
func serveAllAlong(t testing.TB, c *http.Client, p *controllerProc, ns, name string) (*servingLog, func()) {
	l := &servingLog{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, path := range []string{"/api/v1/rollouts/" + ns + "/" + name, "/rollouts/" + ns + "/" + name} {
				if code, body := consoleGet(t, c, p, path); code == http.StatusOK {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.firsts) < 5 {
						l.firsts = append(l.firsts, fmt.Sprintf("%s %s: %d %s", time.Now().Format("15:04:05.000"), path, code, short(body, 200)))
					}
					l.mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return l, func() { close(done); wg.Wait() }
}

// TestHASessionsAndFailover runs two replicas with --leader-elect and one
// --session-key-file. A console session signed in through one serves
// pages and CSRF-protected writes on the other; the standby takes writes
// through its API; the leader is killed with SIGKILL mid-rollout, and the
// standby takes over: the rollout goes on with every step once, the
// route's weights only rising, and finishes, while the standby served the
// session's API and console requests all along.
func TestHASessionsAndFailover(t *testing.T) {
	e := haEnv(t)
	leader, standby := e.startPair()
	c := consoleClient(t)
	consoleSignIn(t, c, standby, leader, apiOperator)
	code, page := consoleGet(t, c, standby, "/")
	m := metaCSRF.FindStringSubmatch(page)
	if code != http.StatusOK || !strings.Contains(page, `id="user">olga<`) || m == nil {
		t.Fatalf("the standby's list page with the leader's session: %d, want 200 showing olga and a CSRF token", code)
	}
	csrf := m[1]

	weights := e.watchWeights("primary")
	code, body := apiDo(t, standby, http.MethodPost, "/api/v1/rollouts", apiOperator, map[string]any{
		"namespace": e.ns, "name": "ha",
		"spec": map[string]any{"virtualService": "checkout", "stableSubset": "v1", "canarySubset": "v2", "stepInterval": "3s",
			"analysis": map[string]any{"interval": "1s"}},
	})
	if code != http.StatusCreated {
		t.Fatalf("POST /rollouts on the standby: %d %v", code, body)
	}
	served, stopServing := serveAllAlong(t, c, standby, e.ns, "ha")
	e.eventually(30*time.Second, "weight 10", func() (bool, string) { return weights.has(10), fmt.Sprint(weights.get()) })

	// A write through the session on the standby needs the CSRF token;
	// with it, the leader carries it out. Resume goes through the leader.
	base := "/api/v1/rollouts/" + e.ns + "/ha/"
	if code, _ := sessionPost(t, c, standby, base+"pause", ""); code != http.StatusUnauthorized {
		t.Errorf("pause through the session without X-CSRF-Token: %d, want 401", code)
	}
	if ro := e.get("ha"); ro.Status.Phase != v1alpha1.PhaseProgressing || ro.Spec.Paused {
		t.Fatalf("a refused pause changed the rollout: phase %s, paused %v", ro.Status.Phase, ro.Spec.Paused)
	}
	if code, body := sessionPost(t, c, standby, base+"pause", csrf); code != http.StatusOK {
		t.Fatalf("pause through the session on the standby: %d %s", code, body)
	}
	e.waitPhase("ha", v1alpha1.PhasePaused, 20*time.Second)
	if code, body := sessionPost(t, c, leader, base+"resume", csrf); code != http.StatusOK {
		t.Fatalf("resume through the session on the leader: %d %s", code, body)
	}
	e.waitPhase("ha", v1alpha1.PhaseProgressing, 20*time.Second)

	e.eventually(30*time.Second, "weight 25", func() (bool, string) { return weights.has(25), fmt.Sprint(weights.get()) })
	leader.kill()
	t.Logf("killed the leader at weight 25")
	e.eventually(30*time.Second, "the standby to lead", func() (bool, string) { return leads(standby), "" })
	ro := e.waitPhase("ha", v1alpha1.PhaseSucceeded, 60*time.Second)
	e.eventually(10*time.Second, "weight 100 on the route", func() (bool, string) { return weights.has(100), fmt.Sprint(weights.get()) })
	stopServing()

	if got := weights.get(); !slices.Equal(got, []int32{0, 10, 25, 50, 100}) {
		t.Errorf("canary weights seen on the route: %v, want [0 10 25 50 100] (rising, each once)", got)
	}
	var advanced []string
	ends := 0
	for _, h := range ro.Status.History {
		switch h.Reason {
		case "StepAdvanced": // To reads "Progressing 2/4 (25%)": keep the weight
			advanced = append(advanced, h.To[strings.LastIndex(h.To, " ")+1:])
		case "Succeeded":
			ends++
		}
	}
	if want := []string{"(25%)", "(50%)"}; !slices.Equal(advanced, want) || ends != 1 {
		t.Errorf("history: steps advanced to %v and %d successes, want %v and one\n%s", advanced, ends, want, jsonOf(t, ro.Status.History))
	}
	if n := served.failed.Load(); n > 0 || served.ok.Load() == 0 {
		t.Errorf("the standby failed %d of %d requests of the session while the leader ran and died: %v",
			n, n+served.ok.Load(), served.firsts)
	}
	t.Logf("the standby answered %d requests of the session, from before the kill to the end", served.ok.Load())
	if code, _ := consoleGet(t, c, standby, "/rollouts/"+e.ns+"/ha"); code != http.StatusOK {
		t.Errorf("the new leader's rollout page with the dead leader's session: %d, want 200", code)
	}
}

// TestHACleanStopHandsOver: a leader stopped with SIGTERM releases the
// Lease as it exits (LeaderElectionReleaseOnCancel), rather than leaving
// it held until it runs out, and the standby leads.
func TestHACleanStopHandsOver(t *testing.T) {
	e := haEnv(t)
	leader, standby := e.startPair()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	must(t, err)
	holder := func() string {
		l, err := kc.CoordinationV1().Leases(leaseNamespace).Get(e.ctx, leaseName, metav1.GetOptions{})
		must(t, err)
		if l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	old := holder()
	if old == "" {
		t.Fatal("the leader holds no Lease")
	}
	leader.stop()
	if now := holder(); now == old {
		t.Errorf("the Lease is still held by the stopped leader %q", old)
	}
	e.eventually(30*time.Second, "the standby to lead", func() (bool, string) { return leads(standby), "" })
}

// failoverTrials is how many leaders BenchmarkFailover kills.
const failoverTrials = 5

// BenchmarkFailover kills the leader of two replicas with SIGKILL,
// failoverTrials times, each at another moment of a step, and measures
// from the kill to the standby leading (its leader_election_master_status),
// to its first status write of the rollout (the next tick: a step is due
// at every tick then, or the weight is confirmed again), and to the
// route's next weight. Run it with -benchtime 1x; the timings are
// printed, not asserted.
func BenchmarkFailover(b *testing.B) {
	var leads, ticks, weights []float64
	rows := make([]string, 0, failoverTrials)
	for i := range failoverTrials {
		lead, tick, weight := failoverTrial(b, i)
		leads, ticks, weights = append(leads, lead.Seconds()), append(ticks, tick.Seconds()), append(weights, weight.Seconds())
		rows = append(rows, fmt.Sprintf("%d\t%s\t%s\t%s\t", i+1, seconds(lead), seconds(tick), seconds(weight)))
	}
	table(fmt.Sprintf("BenchmarkFailover: %d leaders killed with SIGKILL mid-rollout, the controller's default leader election timings", failoverTrials),
		"trial\tkill → standby leads (s)\tkill → next tick written (s)\tkill → next weight (s)\t", rows)
	table("failover", "trials\tp50 next tick (s)\tmax next tick (s)\tmax standby leads (s)\t", []string{
		fmt.Sprintf("%d\t%.2f\t%.2f\t%.2f\t", failoverTrials, percentile(ticks, 50), percentile(ticks, 100), percentile(leads, 100))})
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(percentile(ticks, 50), "s_to_tick_p50")
	b.ReportMetric(percentile(ticks, 100), "s_to_tick_max")
}

// failoverTrial runs one rollout on two replicas, kills the leader in a
// step, and returns how long after the kill the standby led, wrote the
// rollout's status, and changed the route's weight.
func failoverTrial(b *testing.B, i int) (lead, tick, weight time.Duration) {
	s := newRunScope(b)
	defer s.close()
	e := haEnv(s)
	leader, standby := e.startPair()
	log := e.watchWeights("primary")
	name := fmt.Sprintf("failover-%d", i)
	e.rollout(name, func(r *v1alpha1.Rollout) {
		r.Spec.StepInterval = dur(2 * time.Second)
		r.Spec.Steps = []int32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	})
	e.eventually(60*time.Second, "weight 20", func() (bool, string) { return log.has(20), fmt.Sprint(log.get()) })
	time.Sleep(time.Duration(i) * 2 * time.Second / failoverTrials) // another moment of the step each time
	leader.kill()
	killed := time.Now()
	time.Sleep(100 * time.Millisecond) // a request the leader sent as it died lands before rv0 is read
	rv0 := e.get(name).ResourceVersion
	deadline := killed.Add(60 * time.Second)
	for lead == 0 || tick == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("trial %d: 60 s after the kill the standby leads %v, wrote the status %v", i+1, lead != 0, tick != 0)
		}
		if lead == 0 && leads(standby) {
			lead = time.Since(killed)
		}
		if tick == 0 && e.get(name).ResourceVersion != rv0 {
			tick = time.Since(killed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.eventually(30*time.Second, "the next weight", func() (bool, string) {
		at, ok := log.firstAfter(killed)
		weight = at.Sub(killed)
		return ok, fmt.Sprint(log.get())
	})
	return lead, tick, weight
}

// firstAfter returns when the route's weight first changed at or after t0.
func (l *weightLog) firstAfter(t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.ats {
		if !at.Before(t0) {
			return at, true
		}
	}
	return time.Time{}, false
}
