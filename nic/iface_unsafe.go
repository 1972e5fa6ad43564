package nic

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool's ETHTOOL_GRXFHINDIR (include/uapi/linux/ethtool.h): read the RSS
// indirection table, struct ethtool_rxfh_indir { cmd, size, ring_index[] }.
const ethtoolGRXFHIndir = 0x00000038

// ifreqData is struct ifreq with its union as ethtool's data pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

// RSSTable returns the interface's RSS indirection table: for each hash
// bucket, the rx queue its flows go to. A driver without RSS (veth) answers
// EOPNOTSUPP.
func RSSTable(ifname string) ([]uint32, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("nic: %s: name too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nic: %s: RSS table: %w", ifname, err)
	}
	defer unix.Close(fd)
	get := func(buf []uint32) error {
		var ifr ifreqData
		copy(ifr.name[:], ifname)
		ifr.data = unsafe.Pointer(&buf[0])
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		if errno != 0 {
			return errno
		}
		return nil
	}
	// First the table's size (size 0 asks for it), then the table.
	head := []uint32{ethtoolGRXFHIndir, 0}
	if err := get(head); err != nil {
		return nil, fmt.Errorf("nic: %s: RSS table: %w", ifname, err)
	}
	if head[1] == 0 {
		return nil, nil
	}
	buf := make([]uint32, 2+head[1])
	buf[0], buf[1] = ethtoolGRXFHIndir, head[1]
	if err := get(buf); err != nil {
		return nil, fmt.Errorf("nic: %s: RSS table: %w", ifname, err)
	}
	return buf[2:], nil
}
