// Package xdp owns the XDP program that decides, frame by frame, what the
// kernel keeps and what goes to xhttpd: TCP segments for a served address
// and port are redirected to the AF_XDP socket of the rx queue they arrived
// on; everything else (ARP and neighbour discovery, ICMP, SSH, other ports,
// anything it cannot parse) is passed to the kernel, so the host keeps
// working on the address it shares with the server.
//
// The package owns the program (steer.c, compiled by bpf2go; the generated
// steer_bpfel.go and steer_bpfel.o are committed), its maps (served ports,
// served IPv4 and IPv6 addresses, the XSKMAP of sockets per queue and the
// per-CPU verdict counters), and attaching it with a bpf_link, so that it
// goes away with the process, even on SIGKILL.
//
// It does not create AF_XDP sockets: package nic does. Attach puts their
// file descriptors in the XSKMAP (Config.Sockets) before the program goes
// on; [Steering.Register] and [Steering.Unregister] change one queue's
// later. Package xdpnet does both in its start-up order.
//
// Regenerate the program with `go generate ./xdp/` (clang, llvm-strip); the
// libbpf headers it includes are pinned under headers/.
package xdp

//go:generate go tool bpf2go -tags linux -target bpfel -type counter -type syncookie_config -type stray_config -type flow steer steer.c -- -I./headers -O2 -g -Wall -Werror
