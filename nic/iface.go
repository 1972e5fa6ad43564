package nic

import (
	"fmt"
	"github.com/xhttpd/xhttpd/internal/enum"

	"path/filepath"

	"golang.org/x/sys/unix"
)

// RxQueues is the number of receive queues the interface has now, as
// /sys/class/net/NAME/queues lists them.
func RxQueues(ifname string) (int, error) {
	m, err := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	if err != nil {
		return 0, fmt.Errorf("nic: %s: rx queues: %w", ifname, err)
	}
	if len(m) == 0 {
		return 0, fmt.Errorf("nic: %s: no rx queues in /sys/class/net", ifname)
	}
	return len(m), nil
}

// DriverInfo is what ethtool -i reports of an interface's driver.
type DriverInfo struct {
	Driver, Version, Firmware string // Firmware is "" when the driver has none
}

// Drvinfo reads the interface's driver, its version and its firmware.
func Drvinfo(ifname string) (DriverInfo, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return DriverInfo{}, fmt.Errorf("nic: %s: driver: %w", ifname, err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return DriverInfo{}, fmt.Errorf("nic: %s: ethtool driver info: %w", ifname, err)
	}
	return DriverInfo{
		Driver:   unix.ByteSliceToString(info.Driver[:]),
		Version:  unix.ByteSliceToString(info.Version[:]),
		Firmware: unix.ByteSliceToString(info.Fw_version[:]),
	}, nil
}

// Driver is the name of the interface's driver, as ethtool -i reports it.
func Driver(ifname string) (string, error) {
	info, err := Drvinfo(ifname)
	return info.Driver, err
}

// TrustRxChecksum reports whether received checksums can go unverified
// because frames from this driver never crossed a wire. A veth's frames come
// from the peer's own stack, which with TX checksum offload on leaves only
// the pseudo-header sum in the TCP checksum (CHECKSUM_PARTIAL), and AF_XDP
// hands them over as they are: verifying them would drop every segment, and
// nothing on the way could have corrupted them. Every other driver's frames
// are verified.
func TrustRxChecksum(driver string) bool {
	switch driver {
	case "veth", "netkit":
		return true
	}
	return false
}

// RxChecksum is the policy for received TCP checksums: verify them, trust
// them, or decide by driver (TrustRxChecksum). The zero value is
// RxChecksumAuto.
type RxChecksum int

const (
	// RxChecksumAuto trusts the drivers TrustRxChecksum names and verifies
	// every other's frames.
	RxChecksumAuto RxChecksum = iota
	// RxChecksumVerify verifies every received checksum.
	RxChecksumVerify
	// RxChecksumTrust verifies none: for a NIC that verifies them itself.
	RxChecksumTrust
)

var rxChecksumNames = []string{RxChecksumAuto: "auto", RxChecksumVerify: "verify", RxChecksumTrust: "trust"}

func (c RxChecksum) String() string { return enum.Name(rxChecksumNames, c, "RxChecksum") }

// ParseRxChecksum reads "auto", "verify" or "trust".
func ParseRxChecksum(s string) (RxChecksum, error) {
	return enum.Parse[RxChecksum](rxChecksumNames, s, "rx checksum")
}

// UnmarshalText is ParseRxChecksum, for flag.TextVar and configuration
// files.
func (c *RxChecksum) UnmarshalText(b []byte) error {
	return enum.Unmarshal(rxChecksumNames, b, "rx checksum", c)
}

// MarshalText is the policy's name.
func (c RxChecksum) MarshalText() ([]byte, error) {
	return enum.Marshal(rxChecksumNames, c, "rx checksum")
}
