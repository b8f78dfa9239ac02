package io.vhostffm.testkit.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import org.junit.jupiter.api.Tag;

/**
 * The life-cycle soak ({@link LifeCycleSoak}) on the kernel's vhost-net, in the VM bench: the
 * device starts on {@link VhostNetBackend}, switches to the userspace datapath and back, and
 * reopens vhost-net for each close and reopen (so the vhost-net descriptors, its ring error
 * eventfds and its error watcher thread are counted too).
 *
 * <p>{@value #CYCLES} cycles per transition, not 1,000: the bench's VM is software-emulated (QEMU
 * TCG), where an ioctl costs about a hundred times what it costs on hardware and a vhost-net start
 * is a few dozen of them; 50 keeps the whole class to a few minutes there and is still ten times
 * the warm-up, so a leak of one resource per cycle shows 45 times over.
 */
@Tag("kernel")
class LifeCycleSoakKernelTest extends LifeCycleSoak {
    static final int CYCLES = 50;

    @Override
    RuntimeRig.BackendOpener primary() {
        return VhostNetBackend::open;
    }

    @Override
    RuntimeRig.BackendOpener other() {
        return UserspaceNetBackend::open;
    }

    @Override
    int cycles(String transition) {
        return CYCLES;
    }
}
