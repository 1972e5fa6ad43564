package main

import (
	"reflect"
	"runtime"
	"testing"
)

func TestParsePin(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	for _, tc := range []struct {
		in   string
		want pinning
	}{
		{"", pinning{}},
		{"0/1", pinning{"0", "1"}},
		{" 1 /0", pinning{"1", "0"}},
	} {
		got, err := parsePin(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parsePin(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0", "0/", "/1", "0/0", "0,1/1", "x/1", "0/-1", "0/4096", "0/1/2"} {
		if p, err := parsePin(bad); err == nil {
			t.Errorf("parsePin(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestWrap(t *testing.T) {
	path, args := wrap("", "/bin/wrk", []string{"-c", "32"})
	if path != "/bin/wrk" || !reflect.DeepEqual(args, []string{"-c", "32"}) {
		t.Errorf("unpinned: %s %q", path, args)
	}
	path, args = wrap("1", "/bin/wrk", []string{"-c", "32"})
	if path != "taskset" || !reflect.DeepEqual(args, []string{"-c", "1", "/bin/wrk", "-c", "32"}) {
		t.Errorf("pinned: %s %q", path, args)
	}
}
