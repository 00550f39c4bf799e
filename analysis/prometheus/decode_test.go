package prometheus

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// reference decodes an answer as client_golang does (model.Vector's own
// JSON decoding), keeping the finite float samples as fetch always did.
func reference(body []byte) ([]sample, bool) {
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &env) != nil || env.Status != "success" || env.Data.ResultType != "vector" {
		return nil, false
	}
	var vec model.Vector
	if json.Unmarshal(env.Data.Result, &vec) != nil {
		return nil, false
	}
	var out []sample
	for _, s := range vec {
		if v := float64(s.Value); s.Histogram == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, sample{labels: setOf(s.Metric), value: v})
		}
	}
	return out, true
}

func sameSamples(a, b []sample) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d samples, want %d", len(a), len(b))
	}
	for i := range a {
		if !a[i].labels.metric().Equal(b[i].labels.metric()) || a[i].value != b[i].value {
			return fmt.Errorf("sample %d = %v %v, want %v %v", i, a[i].labels, a[i].value, b[i].labels, b[i].value)
		}
	}
	return nil
}

var decodeCases = []string{
	`{"status":"success","data":{"resultType":"vector","result":[]}}`,
	`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"3"]}]}}`,
	` { "status" : "success" , "warnings" : ["w"], "data" : { "resultType" : "vector" , "result" : [ { "metric" : { "a" : "x\"y\\z\u00e9", "b":"é" } , "value" : [ 1700000000.123 , "1e3" ] } ] } , "infos": [] } `,
	`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"NaN"]},{"metric":{"a":"2"},"value":[1,"+Inf"]},{"metric":{"a":"3"},"value":[1,"-0.25"]}]}}`,
	`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1","a":"2"},"value":[1,"4"]}]}}`,
	`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"1"},"histogram":[1,{"count":"2","sum":"3","buckets":[[0,"0","1","2"]]}]},{"value":[1,"7"],"metric":{"le":"2"}}]}}`,
	`{"data":{"result":[{"metric":{"x":"y"},"value":[1,"2"]}],"resultType":"vector"},"status":"success"}`,
}

// TestDecodeVectorAsClientGolang: the in-place decoder reads every answer
// as client_golang's decoding does, labels and values, packed or not.
func TestDecodeVectorAsClientGolang(t *testing.T) {
	for _, c := range decodeCases {
		want, ok := reference([]byte(c))
		if !ok {
			t.Fatalf("the reference refuses %s", c)
		}
		got, err := decodeVector([]byte(c), newLabelSets(100), nil)
		if err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		if err := sameSamples(got, want); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestDecodeVectorRefusesWhatIsNoVector: an error status, another result
// type and broken JSON are errors that say so, and nothing is returned.
func TestDecodeVectorRefusesWhatIsNoVector(t *testing.T) {
	deep := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"],"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}}`
	for body, want := range map[string]string{
		`{"status":"error","errorType":"bad_data","error":"parse error"}`:                                   `answer status "error": parse error`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`:   "answer is a matrix, want a vector",
		`{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`:                              "answer is a scalar, want a vector",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"1"]`:   "unexpected end",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}}`: `want '"'`,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}`:      `sample value "x"`,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1",2]}]}}`:    "more than 2",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}`:          "1 elements",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"` + "\x01" + `"}}]}}`:  "control character",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}`:                      "without a value",
		deep: "nested deeper",
		``:   "unexpected end",
	} {
		rows, err := decodeVector([]byte(body), newLabelSets(100), nil)
		if err == nil || !strings.Contains(err.Error(), want) || rows != nil {
			t.Errorf("%.80s: %d rows, error %v, want one saying %q", body, len(rows), err, want)
		}
	}
}

// FuzzDecodeVector: the decoder never panics, and what it reads of an
// answer of valid UTF-8 is what client_golang reads. It may refuse what
// client_golang takes and Prometheus never sends (keys in another case,
// a sample without a value), which then reads as Prometheus unavailable;
// TestDecodeVectorAsClientGolang holds it to every answer Prometheus
// sends.
func FuzzDecodeVector(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeVector(body, newLabelSets(4), nil)
		want, ok := reference(body)
		if err != nil || !ok || !utf8.Valid(body) {
			return
		}
		if err := sameSamples(got, want); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkDecodeLatencyAnswer decodes a packed latency answer of 1,000
// services (two versions, twenty buckets: 40,000 series) the second time
// it comes, when its label sets are held, and with client_golang's
// decoding for comparison.
func BenchmarkDecodeLatencyAnswer(b *testing.B) {
	var ms []string
	for s := range 1000 {
		for _, v := range []string{"v1", "v2"} {
			for le := range 20 {
				ms = append(ms, fmt.Sprintf(`{"le":"%d","serin_series":"ns-%d|svc-%d.ns-%d.svc.cluster.local|svc-%d|svc-%d|svc-%d-%s|%s"}`, 1<<le, s, s, s, s, s, s, v, v))
			}
		}
	}
	body := answerJSON(ms...)
	names := packedBy(MeshQuery(InboundLatencyQuery, nil))
	ls := newLabelSets(maxLabelSets)
	if _, err := decodeVector(body, ls, names); err != nil {
		b.Fatal(err)
	}
	b.Run("in-place", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeVector(body, ls, names); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := reference(body); !ok {
				b.Fatal("refused")
			}
		}
	})
}
