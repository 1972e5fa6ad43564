package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var errExample = errors.New("xhttpd exited before accepting on 198.18.0.1:80: exit status 2")

func TestParseModes(t *testing.T) {
	got, err := parseModes("interrupt, hybrid,busy")
	if want := []string{"interrupt", "hybrid", "busy"}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("parseModes = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "kernel", "busy,", "poll"} {
		if got, err := parseModes(bad); err == nil {
			t.Errorf("parseModes(%q) = %q, want an error", bad, got)
		}
	}
}

func TestWriteIdleTable(t *testing.T) {
	var sb strings.Builder
	err := writeIdleTable(&sb, []idleRow{
		{mode: "interrupt", queues: 1, share: 0.0033},
		{mode: "busy", queues: 2, share: 2.016},
		{mode: "hybrid", queues: 1, err: errExample},
	})
	want := `| mode | queues | CPU % of one core |
| --- | ---: | ---: |
| interrupt | 1 | 0.3 |
| busy | 2 | 201.6 |
| hybrid | 1 | failed |
`
	if diff := cmp.Diff(want, sb.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if !errors.Is(err, errExample) {
		t.Errorf("writeIdleTable returned %v, want the failed row's error", err)
	}
}
