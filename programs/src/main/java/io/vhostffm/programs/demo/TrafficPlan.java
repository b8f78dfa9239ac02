package io.vhostffm.programs.demo;

/**
 * What the resumed guest does on the destination: transmit until {@code txTotal[p]} frames on
 * each pair, receive until {@code rxTotal[p]} of stream {@code p}.
 */
public record TrafficPlan(long[] txTotal, long[] rxTotal, long timeoutMillis) {}
