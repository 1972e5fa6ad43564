package testbed

import (
	"strings"
	"testing"
)

func TestPrefixWriter(t *testing.T) {
	var sb strings.Builder
	p := &prefixWriter{w: &sb, prefix: "x| "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.Flush()
	if want := "x| one\nx| two\nx| three\n"; sb.String() != want {
		t.Errorf("got %q, want %q", sb.String(), want)
	}
}
