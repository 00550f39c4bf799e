package web_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// listSweep scrolls the list to 200 positions spread over its height,
// two frames each, watching for long tasks (over 50 ms: a frame the
// reader would see stall), and returns their count, the longest, and the
// mean time of a step.
const listSweep = `(async () => {
  const s = document.getElementById('scroller');
  const tasks = [];
  const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) tasks.push(e.duration); });
  obs.observe({ type: 'longtask' });
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const steps = 200;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    s.scrollTop = (s.scrollHeight - s.clientHeight) * ((i * 37) % steps) / steps;
    await frame();
    await frame();
  }
  const step = (performance.now() - t0) / steps;
  await new Promise((r) => setTimeout(r, 100));
  obs.disconnect();
  return { tasks: tasks.length, max: Math.max(0, ...tasks), step };
})()`

// listLoaded resolves, at the latest, when the list has loaded all its
// rollouts, with the time since navigation began.
const listLoaded = `new Promise((resolve) => {
  const root = document.getElementById('list');
  const done = () => root.dataset.loaded === 'true' && root.dataset.total === '%d';
  if (done()) return resolve(performance.now());
  new MutationObserver((_, o) => { if (done()) { o.disconnect(); resolve(performance.now()); } }).observe(root, { attributes: true });
})`

// BenchmarkListInBrowser measures the list page in headless Chromium at
// 1,000 and 10,000 rollouts: the time from navigation until every page of
// the list is loaded and drawn (load_ms, an upper bound), and over a
// sweep of 200 scroll positions the long tasks (long_tasks, over 50 ms),
// the longest (max_task_ms) and the mean time of a step of two frames
// (step_ms; 33 ms is two frames at 60 Hz, nothing spent).
//
//	go test ./web -run '^$' -bench ListInBrowser -benchtime 3x
func BenchmarkListInBrowser(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			f := newFixtureWith(b, false, seedList(n))
			br := newBrowser(b)
			br.login(f.srv.URL, viewerToken)
			var load, tasks, maxTask, step float64
			for b.Loop() {
				br.do(chromedp.Navigate(f.srv.URL + "/"))
				load += eval[float64](br, fmt.Sprintf(listLoaded, n), chromedp.EvalAwaitPromise)
				sweep := eval[struct{ Tasks, Max, Step float64 }](br, listSweep, chromedp.EvalAwaitPromise)
				tasks += sweep.Tasks
				maxTask = max(maxTask, sweep.Max)
				step += sweep.Step
			}
			runs := float64(b.N)
			b.ReportMetric(load/runs, "load_ms")
			b.ReportMetric(tasks/runs, "long_tasks")
			b.ReportMetric(maxTask, "max_task_ms")
			b.ReportMetric(step/runs, "step_ms")
		})
	}
}
