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

// TestUnpackRestoresTheLabels: a packed answer's series get the labels
// packed in them back, in order, with an empty value left out, and le
// kept; the next answer of the same series shares the first one's sets;
// and the query of each packed template is known as packed.
func TestUnpackRestoresTheLabels(t *testing.T) {
	names := packedBy(MeshQuery(InboundLatencyQuery, []string{"shop"}))
	if len(names) != 6 || names[0] != "destination_workload_namespace" || names[5] != "destination_version" {
		t.Fatalf("packedBy(inbound latency) = %v", names)
	}
	if got := packedBy(MeshQuery(HopLatencyQuery, nil)); len(got) != 7 || got[3] != "source_version" {
		t.Errorf("packedBy(hop latency) = %v", got)
	}
	if got := packedBy(MeshQuery(InboundRequestsQuery, nil)); got != nil {
		t.Errorf("packedBy(inbound requests) = %v, want nil: it is not packed", got)
	}
	packedAnswer := func() []sample {
		return []sample{
			{labels: model.Metric{packLabel: "shop|checkout.shop.svc.cluster.local|checkout|checkout|checkout-v2|v2", "le": "100"}, value: 3},
			{labels: model.Metric{packLabel: "shop|checkout.shop.svc.cluster.local|checkout|checkout|checkout-v1|", "le": "+Inf"}, value: 9},
			{labels: model.Metric{"le": "5"}, value: 1}, // not packed: kept as it is
		}
	}
	ls := newLabelSets(100)
	first := packedAnswer()
	ls.unpack(first, names)
	want := model.Metric{"destination_workload_namespace": "shop", "destination_service": "checkout.shop.svc.cluster.local",
		"destination_service_name": "checkout", "destination_canonical_service": "checkout", "destination_workload": "checkout-v2",
		"destination_version": "v2", "le": "100"}
	if !first[0].labels.Equal(want) || first[0].value != 3 {
		t.Errorf("unpacked %v %v, want %v 3", first[0].labels, first[0].value, want)
	}
	if _, ok := first[1].labels["destination_version"]; ok || first[1].labels["destination_workload"] != "checkout-v1" || first[1].labels["le"] != "+Inf" {
		t.Errorf("unpacked %v: want no destination_version (empty), workload checkout-v1, le +Inf", first[1].labels)
	}
	if !first[2].labels.Equal(model.Metric{"le": "5"}) {
		t.Errorf("a sample without %s became %v", packLabel, first[2].labels)
	}
	second := packedAnswer()
	ls.unpack(second, names)
	if !samePointer(first[0].labels, second[0].labels) || !samePointer(first[1].labels, second[1].labels) {
		t.Errorf("the second answer's series did not share the first one's label sets")
	}
}
