package testbed

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// Sweep deletes namespaces named by New with this prefix ("" means "xh")
// whose owning process is dead, as a crashed or killed test leaves them,
// and returns the names it deleted. Namespaces of live processes are left
// alone. The pid is read in this process's pid namespace, so do not sweep
// a /run/netns shared with other pid namespaces.
func Sweep(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = "xh"
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("testbed: sweep: bad prefix %q", prefix)
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: sweep: %w", err)
	}
	re := sweepRE(prefix)
	var deleted []string
	var errs []error
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 || pidAlive(pid) {
			continue
		}
		if err := delNS(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

func pidAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// sweepRE matches the names nsName gives with this prefix: server, bridge
// and client namespaces (cli, cli1...).
func sweepRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-([0-9]+)-[0-9a-f]{6}-(srv|cli[1-8]?|brg)$`)
}
