package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// historyShown is how many recent transitions status prints.
const historyShown = 10

// printJSON writes v as indented JSON.
func printJSON(cio cliIO, v any) int {
	enc := json.NewEncoder(cio.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(cio.Stderr, "serin: write output: %v\n", err)
		return exitError
	}
	return exitOK
}

// printRollout prints the answer of a start or an action: the JSON, or a
// short summary.
func printRollout(cio cliIO, output string, r api.Rollout) int {
	if output == "json" {
		return printJSON(cio, r)
	}
	fmt.Fprintf(cio.Stdout, "rollout %s/%s: %s\n", r.Namespace, r.Name, summary(r))
	if len(r.Requests) > 0 {
		for _, k := range sortedKeys(r.Requests) {
			fmt.Fprintf(cio.Stdout, "  requested: %s=%s\n", k, r.Requests[k])
		}
	}
	return exitOK
}

// summary is a one-line state of r: phase, weight, step, ladder and pause.
func summary(r api.Rollout) string {
	parts := []string{string(r.Phase), fmt.Sprintf("weight %d%%", r.Status.CanaryWeight), r.Step, "steps " + stepLadder(steps(r), currentStep(r))}
	if r.Spec.Paused {
		parts = append(parts, "paused")
	}
	return strings.Join(parts, ", ")
}

// steps are r's step weights, the defaults when the spec has none.
func steps(r api.Rollout) []int32 {
	if len(r.Spec.Steps) > 0 {
		return r.Spec.Steps
	}
	return v1alpha1.DefaultSteps
}

// stepLadder renders steps with the current one bracketed:
// "10 → [25] → 50 → 100". current is -1 before the first step.
func stepLadder(steps []int32, current int32) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = strconv.Itoa(int(s))
		if int32(i) == current {
			parts[i] = "[" + parts[i] + "]"
		}
	}
	return strings.Join(parts, " → ")
}

// currentStep is r's step index for the ladder, -1 before the first step
// (a Pending rollout's status still holds the zero index).
func currentStep(r api.Rollout) int32 {
	if r.Phase == v1alpha1.PhasePending {
		return -1
	}
	return r.Status.CurrentStep
}

// printList writes the aligned table of rollouts, as the API's summaries
// say them, in the API's order.
func printList(w io.Writer, items []api.RolloutSummary, now time.Time) {
	if len(items) == 0 {
		fmt.Fprintln(w, "No rollouts found.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tPHASE\tSTEP\tWEIGHT\tAGE")
	for _, r := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d%%\t%s\n", r.Namespace, r.Name, r.Phase, r.Step, r.Weight, age(now, r.CreatedAt))
	}
	tw.Flush()
}

// age is a short duration since t, as kubectl prints it: 45s, 12m, 3h, 2d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// printStatus writes the full status of one rollout; self is the command
// that the hints name ("serin rollout" or "kubectl serin").
func printStatus(w io.Writer, r api.Rollout, now time.Time, self string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	field("Rollout", r.Namespace+"/"+r.Name)
	phase := string(r.Phase)
	if r.Spec.Paused && r.Phase != v1alpha1.PhasePaused {
		phase += " (pause requested)"
	}
	field("Phase", phase)
	field("Step", r.Step)
	field("Steps", stepLadder(steps(r), currentStep(r)))
	field("Weight", fmt.Sprintf("%d%% canary, %d%% stable", r.Status.CanaryWeight, 100-r.Status.CanaryWeight))
	field("Target", r.Target)
	if r.DataPlane != "" {
		field("Data plane", r.DataPlane)
	}
	if w := r.Workload; w != nil {
		field("Workload", fmt.Sprintf("deployment %s: %s; %d release(s) (%s history -n %s %s)", w.Deployment, w.State, len(r.Releases), self, r.Namespace, r.Name))
	}
	if r.Status.Message != "" {
		field("Message", r.Status.Message)
	}
	for _, k := range sortedKeys(r.Requests) {
		field("Requested", k+"="+r.Requests[k])
	}
	field("Age", age(now, r.CreatedAt))
	a := r.Status.Analysis
	if a.LastVerdict != "" {
		v := a.LastVerdict
		if a.LastReason != "" {
			v += ": " + a.LastReason
		}
		if a.LastTickAt != nil {
			v += " (" + age(now, a.LastTickAt.Time) + " ago)"
		}
		field("Analysis", v)
	}
	tw.Flush()
	printChecks(w, r.Checks)
	if h := r.Status.History; len(h) > 0 {
		fmt.Fprintln(w, "\nHistory:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  AGE\tFROM\tTO\tREASON\tMESSAGE")
		for _, t := range h[max(len(h)-historyShown, 0):] {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", age(now, t.Time.Time), t.From, t.To, t.Reason, t.Message)
		}
		tw.Flush()
	}
}

// printChecks writes the latest checks as the API's view gives them,
// failures first, one row per check, hop and source: the same hop
// measured from metrics and from traces is two rows that say which is
// which.
func printChecks(w io.Writer, cs []api.CheckView) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nChecks:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tHOP\tSOURCE\tCANARY\tSTABLE\tLIMIT\tVERDICT\tEVIDENCE")
	for _, c := range cs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Check, c.Hop, c.Source, c.Canary, c.Stable, c.Limit, c.Verdict, c.Evidence)
	}
	tw.Flush()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
