package cpulist

import (
	"reflect"
	"runtime"
	"testing"
)

func TestParse(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	for in, want := range map[string][]int{"": nil, "0": {0}, "1,0": {1, 0}, " 0 , 1": {0, 1}} {
		got, err := Parse("-cpus", in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{",", "0,", "x", "-1", "1024", "99999", "0;1"} {
		if got, err := Parse("-cpus", bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, got)
		}
	}
}
