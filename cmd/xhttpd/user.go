package main

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// account is the user xhttpd serves as after start-up (-user).
type account struct {
	name     string
	uid, gid int
	groups   []int
}

// lookupAccount resolves -user NAME before anything is started, so that a
// typo is one line at start, not a server that cannot drop.
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("-user %s: %w", name, err)
	}
	a := &account{name: name}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("-user %s: uid %q: %w", name, u.Uid, err)
	}
	if a.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("-user %s: gid %q: %w", name, u.Gid, err)
	}
	if a.uid == 0 {
		return nil, fmt.Errorf("-user %s is root: name an unprivileged user", name)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("-user %s: groups: %w", name, err)
	}
	for _, g := range gids {
		n, err := strconv.Atoi(g)
		if err != nil {
			return nil, fmt.Errorf("-user %s: group %q: %w", name, g, err)
		}
		a.groups = append(a.groups, n)
	}
	return a, nil
}

// drop makes every thread of the process a the user, as Apache's prefork
// children and nginx's workers are: groups, then gid, then uid, after which
// the kernel clears every capability (no SECBIT_KEEP_CAPS). Everything that
// needs privilege is done by then: the sockets are bound and registered, the
// program attached, the listeners and the admin endpoint open. What is left
// works on descriptors already held (the rings, the maps' counters, closing
// the bpf_link) or on files the user may read (a SIGHUP reload of -root).
// Go applies each call to all threads.
func (a *account) drop() error {
	if err := syscall.Setgroups(a.groups); err != nil {
		return fmt.Errorf("-user %s: setgroups: %w", a.name, err)
	}
	if err := syscall.Setgid(a.gid); err != nil {
		return fmt.Errorf("-user %s: setgid: %w", a.name, err)
	}
	if err := syscall.Setuid(a.uid); err != nil {
		return fmt.Errorf("-user %s: setuid: %w", a.name, err)
	}
	return nil
}
