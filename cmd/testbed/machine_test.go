package main

import (
	"strings"
	"testing"
	"time"
)

func TestCPUModel(t *testing.T) {
	for _, tc := range []struct{ name, cpuinfo, want string }{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n\nprocessor\t: 1\nmodel name\t: other\n",
			"AMD EPYC 7B13 64-Core Processor"},
		{"arm64 with Hardware", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: BCM2835\n", "BCM2835"},
		{"no model", "processor\t: 0\nBogoMIPS\t: 50.00\n", ""},
		{"empty model name", "model name\t:\ncpu\t\t: POWER9\n", "POWER9"},
	} {
		if got := cpuModel(tc.cpuinfo); got != tc.want {
			t.Errorf("%s: cpuModel = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The header of every table names the machine, the kernel, the kernel's
// congestion control (what its control answers loss with) and the date.
func TestPrintMachine(t *testing.T) {
	var b strings.Builder
	printMachine(&b, time.Unix(0, 0).UTC())
	for _, want := range []string{"machine: ", "\nkernel: ", "\nkernel TCP congestion control: ", "\ndate: 1970-01-01 00:00:00 UTC\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}
