package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class MachineInfoTest {

    @Test
    void readsModelAndMemoryFromProcText() {
        String cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)   Processor @ 2.10GHz\n"
                + "processor\t: 1\nmodel name\t: Other CPU\n";
        String meminfo = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        MachineInfo info = MachineInfo.fromProcText(cpuinfo, meminfo, 2);
        assertEquals(new MachineInfo(2, "Intel(R) Xeon(R) Processor @ 2.10GHz", 24576000), info);
        assertEquals("2 processors, Intel(R) Xeon(R) Processor @ 2.10GHz, 23.4 GiB memory", info.describe());
    }

    @Test
    void unknownFieldsSayUnknown() {
        MachineInfo info = MachineInfo.fromProcText("", "MemTotal: lots kB\n", 1);
        assertEquals("1 processor, unknown CPU, unknown memory", info.describe());
    }
}
