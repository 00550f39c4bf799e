package main

import (
	"os"
	"testing"
)

// TestCommittedDashboardIsGenerated fails when deploy/grafana/serin.json
// is not what the generator writes: run `make dashboards` after changing
// main.go.
func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../serin.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("deploy/grafana/serin.json is out of date with deploy/grafana/gen; run `make dashboards`")
	}
}
