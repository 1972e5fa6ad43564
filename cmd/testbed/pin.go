package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xhttpd/xhttpd/internal/cpulist"
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

// parsePin reads "SERVER/CLIENT", each a CPU list (cpulist), the two
// disjoint; "" pins nothing.
func parsePin(s string) (pinning, error) {
	if s == "" {
		return pinning{}, nil
	}
	srv, cli, ok := strings.Cut(s, "/")
	if !ok {
		return pinning{}, fmt.Errorf("-pin %q: want SERVER/CLIENT CPU lists, e.g. 0/1", s)
	}
	var lists [2][]int
	for i, l := range []string{srv, cli} {
		cpus, err := cpulist.Parse("-pin", l)
		if err != nil {
			return pinning{}, err
		}
		if cpus == nil {
			return pinning{}, fmt.Errorf("-pin %q: want CPUs on both sides of the /", s)
		}
		lists[i] = cpus
	}
	for _, a := range lists[0] {
		for _, b := range lists[1] {
			if a == b {
				return pinning{}, fmt.Errorf("-pin %q: CPU %d is on both sides", s, a)
			}
		}
	}
	return pinning{server: join(lists[0]), client: join(lists[1])}, nil
}

func join(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
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
