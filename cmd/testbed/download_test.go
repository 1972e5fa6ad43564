package main

import (
	"errors"
	"strings"
	"testing"
)

func TestWriteDownloadTable(t *testing.T) {
	var b strings.Builder
	err := writeDownloadTable(&b, []downloadRow{
		{server: "hybrid", times: ms(4, 2, 3), connect: ms(1, 1, 1), firstByte: ms(2, 1, 2)},
		{server: "kernel", times: ms(2), connect: ms(1), firstByte: ms(1), stalls: 1},
		{server: "interrupt", err: errors.New("boom")},
	}, 1<<20)
	out := b.String()
	// 1 MiB in the median 3 ms: 350 MB/s.
	for _, want := range []string{"| hybrid | 3 | 0 | 1.00 ms | 2.00 ms | 3.00 ms | 4.00 ms | 350 |", "| kernel | 1 | 1 |", "| interrupt | failed |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "1 of 2 downloads stalled") {
		t.Errorf("error %v, want the failed row's and the stall", err)
	}
}
