package scale

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/serin-dev/serin/test/stack"
)

var (
	// st is the real local stack every run shares; each run has its own
	// namespace, exporter and controller.
	st *stack.Stack
	// serinBin is the serin binary built from this tree.
	serinBin string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds serin as the e2e harness does, then runs the tests on
// the stack.
func testMain(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "serin-scale-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	serinBin = filepath.Join(dir, "serin")
	build := exec.Command("go", "build", "-o", serinBin, "./cmd/serin")
	build.Dir = stack.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	fmt.Fprintln(os.Stderr, "[scale] building serin")
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "[scale] build serin: %v\n", err)
		return 1
	}
	return stack.Main(m, stack.Options{Prometheus: true, Jaeger: true}, &st)
}
