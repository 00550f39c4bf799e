package montecarlo

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkJudgeMonteCarlo prints, for the old judge and the new one side
// by side, the false rollbacks of a canary identical to stable (A/A) and
// the detection of injected regressions, then the same at 15 s scrapes.
// MC_ROLLOUTS sets the rollouts per cell (default 400), MC_SEED the seed
// (default 1). Its figures are counts of simulated rollouts; the wall time
// says nothing.
func BenchmarkJudgeMonteCarlo(b *testing.B) {
	n := envInt(b, "MC_ROLLOUTS", 400)
	seed := uint64(envInt(b, "MC_SEED", 1))
	ctx := b.Context()
	for range b.N {
		start := time.Now()
		fmt.Printf("\nMonte Carlo of the judge, %d rollouts per cell, seed %d; steps 10/25/50/100, 2 s ticks, "+
			"inbound + 2 hops (their calls failing at the baseline rate too), latency log-normal with median 20 ms.\n", n, seed)
		worstOld, worstNew := aaTable(ctx, b, "A/A: false rollbacks of a canary identical to stable (1 s scrapes)", aaCells(time.Second, false), n, seed)
		detectionTable(ctx, b, "Detection (1 s scrapes, 30 s steps, baseline 0.5% errors, σ 0.5)", detectionCells(time.Second, false), n, seed)
		aaTable(ctx, b, "A/A at 15 s scrapes", aaCells(15*time.Second, true), n, seed)
		detectionTable(ctx, b, "Detection at 15 s scrapes (30 s steps, baseline 0.5%, σ 0.5)", detectionCells(15*time.Second, true), n, seed)
		fmt.Printf("\n(%.0f s)\n", time.Since(start).Seconds())
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(100*worstOld, "old_aa_worst_false_%")
		b.ReportMetric(100*worstNew, "new_aa_worst_false_%")
	}
}

// cell is one row of a table: a scenario and its label.
type cell struct {
	label string
	sc    Scenario
}

// base is the default scenario: 0.5% errors inbound and on the hops,
// median 20 ms, σ 0.5, 30 s steps. With the hops at the baseline too, the
// old judge's figures are those the issue reports.
func base(rps float64, scrape time.Duration) Scenario {
	return Scenario{RPS: rps, Errors: 0.005, HopErrors: 0.005, MedianMs: 20, Sigma: 0.5, Scrape: scrape, StepInterval: 30 * time.Second}
}

func aaCells(scrape time.Duration, few bool) []cell {
	rpss, errs, sigmas := []float64{20, 50, 200, 1000}, []float64{0, 0.001, 0.005, 0.009}, []float64{0.5, 1}
	if few {
		rpss, errs, sigmas = []float64{50}, []float64{0.005}, []float64{0.5}
	}
	var cs []cell
	for _, rps := range rpss {
		for _, e := range errs {
			for _, sigma := range sigmas {
				for _, step := range []time.Duration{30 * time.Second, 5 * time.Minute} {
					sc := base(rps, scrape)
					sc.Errors, sc.HopErrors, sc.Sigma, sc.StepInterval = e, e, sigma, step
					cs = append(cs, cell{fmt.Sprintf("%-5g %-6s %-4g %-5s", rps, fmt.Sprintf("%.1f%%", 100*e), sigma, stepLabel(step)), sc})
				}
			}
		}
	}
	return cs
}

func detectionCells(scrape time.Duration, few bool) []cell {
	type effect struct {
		label string
		set   func(*Scenario)
	}
	var effects []effect
	for _, pp := range []float64{0.5, 1, 2, 5, 20, 50} {
		effects = append(effects, effect{fmt.Sprintf("+%g pp errors", pp), func(s *Scenario) { s.ExtraErrors = pp / 100 }})
	}
	for _, ms := range []float64{50, 300} {
		effects = append(effects, effect{fmt.Sprintf("+%g ms", ms), func(s *Scenario) { s.ExtraMs = ms }})
	}
	effects = append(effects, effect{"5× calls to payments", func(s *Scenario) { s.PaymentsCalls = 5 }})
	if few {
		effects = []effect{effects[1], effects[5], effects[7]}
	}
	var cs []cell
	for _, e := range effects {
		for _, rps := range []float64{50, 200} {
			sc := base(rps, scrape)
			e.set(&sc)
			cs = append(cs, cell{fmt.Sprintf("%-21s %-4g", e.label, rps), sc})
		}
	}
	return cs
}

// runJudges runs a cell under each judge with the same seed, so that they
// see the same requests while their weights agree.
func runJudges(ctx context.Context, b *testing.B, c cell, n int, seed uint64, js ...Judge) []Tally {
	h := fnv.New64a()
	fmt.Fprintf(h, "%+v", c.sc)
	s := seed ^ h.Sum64()
	var t []Tally
	for _, j := range js {
		outs, err := Run(ctx, c.sc, j, s, n)
		if err != nil {
			b.Fatalf("%s judge, %s (seed %d): %v", j, c.label, s, err)
		}
		t = append(t, Summarize(outs))
	}
	return t
}

func stepLabel(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d m", d/time.Minute)
	}
	return fmt.Sprintf("%d s", d/time.Second)
}

// The tables print each row as soon as its cell is done, in fixed
// columns: a full run takes long enough to want to see it progress.

func aaTable(ctx context.Context, b *testing.B, title string, cells []cell, n int, seed uint64) (worstOld, worstNew float64) {
	fmt.Printf("\n%s\n", title)
	fmt.Printf("%-23s %-27s %-27s %s\n", "rps   errors σ    step", "old: false rollbacks [95%]", "new: false rollbacks [95%]",
		"new: promoted / paused / undecided")
	for _, c := range cells {
		t := runJudges(ctx, b, c, n, seed, Old, New)
		o, nw := t[0], t[1]
		po, lo, hi := o.RollbackShare()
		pn, ln, hn := nw.RollbackShare()
		worstOld, worstNew = max(worstOld, po), max(worstNew, pn)
		fmt.Printf("%-23s %-27s %-27s %d / %d / %d\n", c.label, percent(po, lo, hi), percent(pn, ln, hn),
			nw.Count[Promoted], nw.Count[Paused], nw.Count[Undecided])
	}
	return worstOld, worstNew
}

func detectionTable(ctx context.Context, b *testing.B, title string, cells []cell, n int, seed uint64) {
	fmt.Printf("\n%s\n", title)
	fmt.Println("Time from the rollout's start to the rollback; a rollout not rolled back counts as never.")
	fmt.Printf("%-26s %-17s %-7s %-7s %-17s %-7s %s\n", "canary effect         rps",
		"old: rolled back", "median", "p95", "new: rolled back", "median", "p95")
	for _, c := range cells {
		t := runJudges(ctx, b, c, n, seed, Old, New)
		row := fmt.Sprintf("%-26s", c.label)
		for _, tl := range t {
			p, _, _ := tl.RollbackShare()
			m, mk := tl.TimeToRollback(0.5)
			p95, p95k := tl.TimeToRollback(0.95)
			row += fmt.Sprintf(" %-17s %-7s %-7s", fmt.Sprintf("%.1f%%", 100*p), seconds(m, mk), seconds(p95, p95k))
		}
		fmt.Println(strings.TrimRight(row, " "))
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
