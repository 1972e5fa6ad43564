package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// printMachine writes what a reader needs to compare a table with another:
// the CPUs, the kernel, the kernel's TCP congestion control and the date of
// the run. The congestion control is the host's default, which the
// testbed's namespaces inherit when they are made; it decides how the
// kernel stack's control answers loss (BBR ignores random loss that CUBIC
// answers with smaller windows).
func printMachine(w io.Writer, date time.Time) {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := cpuModel(string(b)); m != "" {
			model = m
		}
	}
	kernel := "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	fmt.Fprintf(w, "machine: %d CPUs (nproc), %s\n", runtime.NumCPU(), model)
	fmt.Fprintf(w, "kernel: %s\n", kernel)
	cc := "unknown"
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control"); err == nil {
		cc = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(w, "kernel TCP congestion control: %s (the host's default, inherited by the testbed's namespaces)\n", cc)
	fmt.Fprintf(w, "date: %s\n", date.Format("2006-01-02 15:04:05 MST"))
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or, on
// architectures without that line, the first "Hardware", "cpu model" or
// "cpu" line.
func cpuModel(cpuinfo string) string {
	found := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.Join(strings.Fields(val), " ")
		if _, seen := found[key]; !seen && val != "" {
			found[key] = val
		}
	}
	for _, k := range []string{"model name", "Hardware", "cpu model", "cpu"} {
		if v := found[k]; v != "" {
			return v
		}
	}
	return ""
}
