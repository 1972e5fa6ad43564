// Package cpulist reads the CPU lists xhttpd's options take (xhttpd -cpus,
// testbed bench -pin): comma-separated CPU numbers, each one this process
// may run on, so that a typo is an error before anything is started rather
// than an EINVAL from sched_setaffinity(2) later.
package cpulist

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Parse reads a list such as "0,2"; "" is no list (nil). flag names the
// option in errors.
func Parse(flag, s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	var cpus []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n >= 1024 || !allowed.IsSet(n) {
			return nil, fmt.Errorf("%s %q: %q is not a CPU this process may use", flag, s, f)
		}
		cpus = append(cpus, n)
	}
	return cpus, nil
}
