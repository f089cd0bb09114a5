// expfmt_oracle reads a text exposition (format 0.0.4) on stdin with the Go
// parser of prometheus/common/expfmt, the one Prometheus, the Pushgateway and
// client_golang use, and prints what it understood: the families in name
// order, re-encoded by expfmt, on stdout. On a parse error it prints the
// error on stderr and exits with 1.
//
// The exporter-proxy tests use it as a differential oracle: Go's reading of
// an input must equal Go's reading of the proxy's output for that input.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/common/expfmt"
)

func main() {
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	out := bufio.NewWriter(os.Stdout)
	for _, name := range names {
		if _, err := expfmt.MetricFamilyToText(out, families[name]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
