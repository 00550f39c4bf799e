package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/serin-dev/serin/api"
)

// worstCheckShown bounds the WORST CHECK column of history on a terminal,
// so that the reason after it keeps some room.
const worstCheckShown = 48

// Release sets images of the Deployment a rollout delivers: POST
// .../release. It returns the rollout as it was when the API accepted it.
func (c *apiClient) Release(ctx context.Context, ns, name string, images map[string]string) (api.Rollout, error) {
	var out api.Rollout
	err := c.do(ctx, http.MethodPost, rolloutPath(ns, name, "release"), nil, api.ReleaseRequest{Images: images}, &out)
	return out, err
}

// parseSetImage parses `set-image -n NS NAME CONTAINER=IMAGE...`.
func parseSetImage(args []string, cio cliIO) (rolloutCommand, error) {
	cf := newCommandFlags("set-image", "set-image -n NS NAME CONTAINER=IMAGE [CONTAINER=IMAGE ...]", cio)
	var ns string
	cf.fs.StringVar(&ns, "n", "", "namespace of the rollout")
	pos, err := cf.parse(args, cio)
	if err != nil {
		return nil, err
	}
	if ns == "" && len(pos) > 0 {
		return nil, errors.New("missing -n NAMESPACE")
	}
	name, images, err := imagesArgs(pos)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int { return setImages(ctx, cio, cf.client, cf.g.Output, ns, name, images) }, nil
}

// setImages releases images of the Deployment that rollout ns/name
// delivers, through c, and says what happens next.
func setImages(ctx context.Context, cio cliIO, c *apiClient, output, ns, name string, images map[string]string) int {
	r, err := c.Release(ctx, ns, name, images)
	if err != nil {
		return fail(cio, fmt.Sprintf("set images of rollout %s/%s", ns, name), err)
	}
	if output == "json" {
		return printJSON(cio, r)
	}
	dep := "its Deployment"
	if r.Workload != nil {
		dep = "deployment " + r.Namespace + "/" + r.Workload.Deployment
	}
	fmt.Fprintf(cio.Stdout, "%s: set %s; the controller releases the new template (%s history -n %s %s)\n",
		dep, imagesString(images), cio.self(), ns, name)
	// The answer shows the rollout before the controller has seen the
	// new template: its phase is the last release's, said so.
	fmt.Fprintf(cio.Stdout, "rollout %s/%s before this release: %s\n", r.Namespace, r.Name, summary(r))
	return exitOK
}

// imagesArgs splits set-image's arguments, NAME CONTAINER=IMAGE..., into
// the rollout's name and the images.
func imagesArgs(pos []string) (string, map[string]string, error) {
	switch len(pos) {
	case 0:
		return "", nil, errors.New("missing the rollout NAME")
	case 1:
		return "", nil, errors.New("missing CONTAINER=IMAGE, e.g. checkout=shop/checkout:2.1")
	}
	images, err := parseImages(pos[1:])
	return pos[0], images, err
}

// parseImages parses CONTAINER=IMAGE arguments. Whether the container
// exists and the image is a valid reference is the API's to say.
func parseImages(args []string) (map[string]string, error) {
	images := map[string]string{}
	for _, a := range args {
		n, img, ok := strings.Cut(a, "=")
		switch {
		case !ok || n == "" || img == "":
			return nil, fmt.Errorf("%q: want CONTAINER=IMAGE, e.g. checkout=shop/checkout:2.1", a)
		case images[n] != "":
			return nil, fmt.Errorf("container %q is given twice", n)
		}
		images[n] = img
	}
	return images, nil
}

// imagesString lists images as "name=image, ..." sorted by name, as the
// API's views do.
func imagesString(images map[string]string) string {
	parts := make([]string, 0, len(images))
	for _, n := range sortedKeys(images) {
		parts = append(parts, n+"="+images[n])
	}
	return strings.Join(parts, ", ")
}

// historyJSON is what history -o json prints.
type historyJSON struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Workload  *api.WorkloadView `json:"workload"`
	Releases  []api.ReleaseView `json:"releases"`
}

func parseHistory(args []string, cio cliIO) (rolloutCommand, error) {
	cf, ns, name, err := parseNamed("history", "history -n NS NAME", args, cio, nil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int { return showHistory(ctx, cio, cf.client, cf.g.Output, ns, name) }, nil
}

// showHistory prints the releases of rollout ns/name as c reads them.
func showHistory(ctx context.Context, cio cliIO, c *apiClient, output, ns, name string) int {
	r, err := c.Get(ctx, ns, name)
	if err != nil {
		return fail(cio, fmt.Sprintf("rollout %s/%s", ns, name), err)
	}
	if output == "json" {
		rels := r.Releases
		if rels == nil {
			rels = []api.ReleaseView{}
		}
		return printJSON(cio, historyJSON{Namespace: r.Namespace, Name: r.Name, Workload: r.Workload, Releases: rels})
	}
	printHistory(cio, r)
	return exitOK
}

// printHistory writes the workload's state and its releases, newest first,
// as the API's view says them. On a terminal every line fits its width:
// the reason, last, is what a narrow terminal cuts.
func printHistory(cio cliIO, r api.Rollout) {
	w := cio.Stdout
	if r.Workload == nil {
		fmt.Fprintf(w, "No releases: rollout %s/%s delivers no Deployment (spec.workload is not set).\n", r.Namespace, r.Name)
		return
	}
	wv := r.Workload
	state := wv.State
	if wv.Adopted {
		state += fmt.Sprintf(" (%d replicas)", wv.Replicas)
	}
	fitted(cio, func(w io.Writer) {
		fmt.Fprintf(w, "Deployment %s/%s: %s\n", r.Namespace, wv.Deployment, state)
	})
	if len(r.Releases) == 0 {
		fmt.Fprintln(w, "No releases yet: the next change of the Deployment's pod template is one.")
		return
	}
	now := cio.Now()
	rows := [][]string{{"REVISION", "IMAGES", "STARTED", "DURATION", "OUTCOME", "WORST CHECK", "REASON"}}
	for _, rel := range r.Releases {
		rev := rel.Revision
		if rel.Stable {
			rev += " (stable)"
		}
		rows = append(rows, []string{rev, rel.Images, age(now, rel.StartedAt) + " ago", dash(rel.Duration), rel.Outcome,
			dash(rel.WorstCheck), dash(oneLine(rel.Reason))})
	}
	if cio.TTY {
		shareTail(rows, max(cio.width(), 20)-1)
	}
	fitted(cio, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, historyPad, ' ', 0)
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	})
}

// historyPad is the space between history's columns.
const historyPad = 2

// shareTail cuts the last two columns of rows (a header first) so that
// each row fits width: they share what the other columns leave, the
// second-to-last taking at most half, and at most worstCheckShown. When
// the other columns leave too little, fitted cuts the lines instead.
func shareTail(rows [][]string, width int) {
	n := len(rows[0])
	widths := make([]int, n)
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rest := width
	for _, w := range widths[:n-2] {
		rest -= w + historyPad
	}
	head := utf8.RuneCountInString(rows[0][n-2])
	if rest < 2*head+historyPad {
		return
	}
	worst := min(widths[n-2], worstCheckShown, max(rest/2-historyPad, head))
	reason := rest - worst - historyPad
	for _, row := range rows {
		row[n-2], row[n-1] = truncate(row[n-2], worst), truncate(row[n-1], reason)
	}
}

// fitted runs write into a buffer and copies its lines to cio.Stdout, each
// cut to the terminal's width when Stdout is one; elsewhere (a pipe, a
// file) lines stay whole.
func fitted(cio cliIO, write func(io.Writer)) {
	var b bytes.Buffer
	write(&b)
	if !cio.TTY {
		_, _ = cio.Stdout.Write(b.Bytes())
		return
	}
	width := max(cio.width(), 20)
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		fmt.Fprintln(cio.Stdout, truncate(l, width-1))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine folds a reason's line breaks, which would break the table.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
