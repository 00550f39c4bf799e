package prometheus

import (
	"reflect"
	"testing"

	"github.com/prometheus/common/model"
)

func answer(services ...string) []sample {
	var out []sample
	for _, s := range services {
		for _, le := range []string{"10", "100", "+Inf"} {
			out = append(out, sample{labels: model.Metric{"destination_service_name": model.LabelValue(s), "le": model.LabelValue(le)}, value: 1})
		}
	}
	return out
}

func samePointer(a, b model.Metric) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// TestLabelSetsShareSeriesBetweenAnswers: the second answer of the same
// series holds the first one's label sets, not its own; a series not seen
// before keeps its own; and the sets held stay bounded.
func TestLabelSetsShareSeriesBetweenAnswers(t *testing.T) {
	ls := newLabelSets(6)
	first := answer("checkout", "payments")
	ls.share(first)
	second := answer("checkout", "payments")
	ls.share(second)
	for i := range second {
		if !samePointer(first[i].labels, second[i].labels) {
			t.Errorf("sample %d %v: want the first answer's label set", i, second[i].labels)
		}
		if !second[i].labels.Equal(answer("checkout", "payments")[i].labels) {
			t.Errorf("sample %d: labels changed to %v", i, second[i].labels)
		}
	}
	third := answer("inventory")
	own := third[0].labels
	ls.share(third)
	if !samePointer(third[0].labels, own) {
		t.Errorf("a new series took another's label set: %v", third[0].labels)
	}
	// Six sets per generation: inventory's started a new one, and the
	// ones before it are still found in the previous.
	fourth := answer("checkout")
	ls.share(fourth)
	if !samePointer(fourth[0].labels, first[0].labels) {
		t.Errorf("a set of the previous generation was not shared")
	}
	if len(ls.cur) > 6 || len(ls.prev) > 6 {
		t.Errorf("generations of %d and %d sets, want at most 6 each", len(ls.cur), len(ls.prev))
	}
}
