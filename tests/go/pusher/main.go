// Command pusher drives Go's client_golang push API against a
// Pushgateway-compatible URL, the way a Go batch job does. The
// integration tests run the same scenario against exporter-proxy and a
// real Pushgateway and compare the two /metrics series by series.
//
// Usage: pusher <base-url> <scenario>
//
//	basic   protobuf Push (the client's default), text Push (.Format),
//	        protobuf Add (POST) and Delete
//	native  a native histogram and a counter with exemplars (protobuf)
//
// Built offline in GOPATH mode from Debian's golang-github-prometheus-*
// packages (see tests/it/golang.rs).
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pusher <base-url> <basic|native>")
		os.Exit(2)
	}
	url, scenario := os.Args[1], os.Args[2]
	var err error
	switch scenario {
	case "basic":
		err = basic(url)
	case "native":
		err = native(url)
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pusher:", err)
		os.Exit(1)
	}
}

func basic(url string) error {
	done := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gojob_records_processed_total", Help: "Records processed by the \"go\" job.",
	})
	done.Add(1234)
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gojob_last_success_seconds", Help: "Last success.\nSecond line.",
	}, []string{"stage"})
	last.WithLabelValues("load").Set(1700000000.5)
	last.WithLabelValues(`we"ird\path`).Set(-2.25e-7)
	dur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gojob_duration_seconds", Help: "Durations.",
		Buckets: []float64{0.1, 0.5, 1, 2.5, 1e6},
	})
	for _, v := range []float64{0.05, 0.3, 0.3, 0.7, 2, 9} {
		dur.Observe(v)
	}
	sum := prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "gojob_size_bytes", Help: "Sizes.",
		Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001},
	})
	for _, v := range []float64{10, 20, 30, 40} {
		sum.Observe(v)
	}
	untyped := prometheus.NewUntypedFunc(prometheus.UntypedOpts{
		Name: "gojob_untyped", Help: "An untyped value.",
	}, func() float64 { return 42 })

	// Protobuf is the pusher's default format.
	if err := push.New(url, "gojob").Collector(done).Collector(last).Collector(dur).
		Collector(sum).Collector(untyped).Grouping("instance", "i1").Push(); err != nil {
		return fmt.Errorf("protobuf push: %w", err)
	}
	// The same metrics in text, in another group.
	if err := push.New(url, "gojob").Format(expfmt.FmtText).Collector(done).Collector(dur).
		Grouping("instance", "i2").Grouping("zone", "a/b").Push(); err != nil {
		return fmt.Errorf("text push: %w", err)
	}
	// POST replaces only the families it carries.
	extra := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gojob_added", Help: "Added by POST."})
	extra.Set(7)
	done.Add(1)
	if err := push.New(url, "gojob").Collector(extra).Collector(done).
		Grouping("instance", "i1").Add(); err != nil {
		return fmt.Errorf("protobuf add: %w", err)
	}
	// A group pushed, then deleted.
	gone := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gojob_gone", Help: "Deleted."})
	gone.Set(1)
	p := push.New(url, "gone").Collector(gone)
	if err := p.Push(); err != nil {
		return fmt.Errorf("push before delete: %w", err)
	}
	if err := p.Delete(); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

func native(url string) error {
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gonative_latency_seconds", Help: "A native histogram.",
		NativeHistogramBucketFactor: 1.1,
	})
	for i := 1; i <= 100; i++ {
		lat.(prometheus.ExemplarObserver).ObserveWithExemplar(
			float64(i)/100, prometheus.Labels{"trace_id": fmt.Sprintf("t%03d", i)})
	}
	reqs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gonative_requests_total", Help: "Requests with an exemplar.",
	})
	reqs.(prometheus.ExemplarAdder).AddWithExemplar(5, prometheus.Labels{"trace_id": "abc123"})
	return push.New(url, "gonative").Collector(lat).Collector(reqs).
		Grouping("instance", "n1").Push()
}
