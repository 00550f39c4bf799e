package prometheus

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

// answerJSON is a vector answer as Prometheus sends it, of the series
// given as JSON metric objects, each valued 1.
func answerJSON(metrics ...string) []byte {
	var rs []string
	for _, m := range metrics {
		rs = append(rs, fmt.Sprintf(`{"metric":%s,"value":[1700000000.5,"1"]}`, m))
	}
	return []byte(`{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(rs, ",") + `]}}`)
}

// latencyAnswer is an answer with three le buckets for each service.
func latencyAnswer(services ...string) []byte {
	var ms []string
	for _, s := range services {
		for _, le := range []string{"10", "100", "+Inf"} {
			ms = append(ms, fmt.Sprintf(`{"destination_service_name":%q,"le":%q}`, s, le))
		}
	}
	return answerJSON(ms...)
}

func decoded(t *testing.T, body []byte, ls *labelSets, names []model.LabelName) []sample {
	t.Helper()
	rows, err := decodeVector(body, ls, names)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func samePointer(a, b labelSet) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// setOf is the label set of m, as labelSets builds it.
func setOf(m model.Metric) labelSet {
	out := make(labelSet, 0, len(m))
	for name, v := range m {
		out = append(out, labelPair{name, v})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return strings.Compare(string(a.name), string(b.name)) })
	return out
}

// TestLabelSetsShareSeriesBetweenAnswers: the second answer of the same
// series holds the first one's label sets, not its own; a series not seen
// before gets its own; and the sets held stay bounded.
func TestLabelSetsShareSeriesBetweenAnswers(t *testing.T) {
	ls := newLabelSets(6)
	first := decoded(t, latencyAnswer("checkout", "payments"), ls, nil)
	second := decoded(t, latencyAnswer("checkout", "payments"), ls, nil)
	for i := range second {
		if !samePointer(first[i].labels, second[i].labels) {
			t.Errorf("sample %d %v: want the first answer's label set", i, second[i].labels)
		}
	}
	if want := (model.Metric{"destination_service_name": "payments", "le": "+Inf"}); !second[5].labels.metric().Equal(want) {
		t.Errorf("sample 5 = %v, want %v", second[5].labels, want)
	}
	third := decoded(t, latencyAnswer("inventory"), ls, nil)
	if third[0].labels.get("destination_service_name") != "inventory" {
		t.Errorf("a new series took another's label set: %v", third[0].labels)
	}
	// Six sets per generation: inventory's started a new one, and the
	// ones before it are still found in the previous.
	fourth := decoded(t, latencyAnswer("checkout"), ls, nil)
	if !samePointer(fourth[0].labels, first[0].labels) {
		t.Errorf("a set of the previous generation was not shared")
	}
	if len(ls.cur) > 6 || len(ls.prev) > 6 {
		t.Errorf("generations of %d and %d sets, want at most 6 each", len(ls.cur), len(ls.prev))
	}
	// A series that differs in one value only is not taken for another.
	other := decoded(t, answerJSON(`{"destination_service_name":"checkout","le":"1000"}`), ls, nil)
	if other[0].labels.get("le") != "1000" {
		t.Errorf("le 1000 read as %v", other[0].labels)
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
	packedAnswer := answerJSON(
		`{"le":"100","serin_series":"shop|checkout.shop.svc.cluster.local|checkout|checkout|checkout-v2|v2"}`,
		`{"le":"+Inf","serin_series":"shop|checkout.shop.svc.cluster.local|checkout|checkout|checkout-v1|"}`,
		`{"le":"5"}`, // not packed: kept as it is
		`{"le":"7","serin_series":"shop|checkout"}`) // fewer parts: the rest absent
	ls := newLabelSets(100)
	first := decoded(t, packedAnswer, ls, names)
	want := model.Metric{"destination_workload_namespace": "shop", "destination_service": "checkout.shop.svc.cluster.local",
		"destination_service_name": "checkout", "destination_canonical_service": "checkout", "destination_workload": "checkout-v2",
		"destination_version": "v2", "le": "100"}
	if !first[0].labels.metric().Equal(want) || first[0].value != 1 {
		t.Errorf("unpacked %v %v, want %v 1", first[0].labels, first[0].value, want)
	}
	if _, ok := first[1].labels.lookup("destination_version"); ok || first[1].labels.get("destination_workload") != "checkout-v1" || first[1].labels.get("le") != "+Inf" {
		t.Errorf("unpacked %v: want no destination_version (empty), workload checkout-v1, le +Inf", first[1].labels)
	}
	if !first[2].labels.metric().Equal(model.Metric{"le": "5"}) {
		t.Errorf("a sample without %s became %v", packLabel, first[2].labels)
	}
	if want := (model.Metric{"le": "7", "destination_workload_namespace": "shop", "destination_service": "checkout"}); !first[3].labels.metric().Equal(want) {
		t.Errorf("a short packed value became %v, want %v", first[3].labels, want)
	}
	second := decoded(t, packedAnswer, ls, names)
	for i := range second {
		if !samePointer(first[i].labels, second[i].labels) {
			t.Errorf("sample %d of the second answer did not share the first one's label set", i)
		}
	}
}
