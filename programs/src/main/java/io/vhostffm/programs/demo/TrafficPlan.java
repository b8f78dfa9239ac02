package io.vhostffm.programs.demo;

/**
 * What the resumed guest does on the destination: transmit until {@code txTotal[p]} frames on
 * each pair, receive until {@code rxTotal[p]} of stream {@code p}, all within
 * {@code timeoutMillis}; its transmit paced by credits ({@link TransmitCredits}).
 *
 * @param transmitUpTo the first credit: the guest's frames (all pairs, counted since it booted)
 *     it may have transmitted until the next {@link TransmitCredit}
 * @param creditTimeoutMillis how long the guest may wait, its credit used up, for the next one
 *     before the destination gives up ({@link TransmitCredits.CreditTimeoutException})
 */
public record TrafficPlan(long[] txTotal, long[] rxTotal, long timeoutMillis, long transmitUpTo,
        long creditTimeoutMillis) {}
