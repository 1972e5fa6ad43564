package main

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinning is bench's -pin: the CPUs the server runs on and the CPUs wrk
// runs on, as taskset(1) lists. The zero value pins nothing.
//
// On a machine this small the load generator and the server share the
// cores; pinned, each server has a core of its own and wrk's threads stay
// off it: requests per second per core. It does not steady the figures
// where the machine itself is unsteady: xhttpd's new connections per
// request measured 5,300 to 5,900 or 8,300 to 9,000 req/s in alternating
// runs, pinned or not, and the kernel stack's moved with them.
type pinning struct {
	server, client string
}

// parsePin reads "SERVER/CLIENT", each a comma-separated list of CPUs this
// process may use, the two lists disjoint; "" pins nothing.
func parsePin(s string) (pinning, error) {
	if s == "" {
		return pinning{}, nil
	}
	srv, cli, ok := strings.Cut(s, "/")
	if !ok {
		return pinning{}, fmt.Errorf("-pin %q: want SERVER/CLIENT CPU lists, e.g. 0/1", s)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return pinning{}, fmt.Errorf("-pin: %w", err)
	}
	seen := map[int]string{}
	var lists [2]string
	for i, l := range []string{srv, cli} {
		var cpus []string
		for _, f := range strings.Split(l, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 || n >= 1024 || !allowed.IsSet(n) {
				return pinning{}, fmt.Errorf("-pin %q: %q is not a CPU this process may use", s, f)
			}
			side := [2]string{"server", "client"}[i]
			if other, dup := seen[n]; dup && other != side {
				return pinning{}, fmt.Errorf("-pin %q: CPU %d is on both sides", s, n)
			}
			seen[n] = side
			cpus = append(cpus, strconv.Itoa(n))
		}
		lists[i] = strings.Join(cpus, ",")
	}
	return pinning{server: lists[0], client: lists[1]}, nil
}

// wrap returns the command that runs path with args on cpus: taskset, which
// sets the affinity and execs it. Servers are pinned by the testbed
// (Testbed.ServerCPUs), which also checks that the PID it measures runs the
// server; wrk by wrap.
func wrap(cpus, path string, args []string) (string, []string) {
	if cpus == "" {
		return path, args
	}
	return "taskset", append([]string{"-c", cpus, path}, args...)
}

// describe says what the pinning is, for the report.
func (p pinning) describe() string {
	if p.server == "" {
		return "no CPU pinning (-pin to give the server and wrk cores of their own)"
	}
	return fmt.Sprintf("the server pinned to CPU %s and wrk to CPU %s (taskset, -pin %s/%s)", p.server, p.client, p.server, p.client)
}
