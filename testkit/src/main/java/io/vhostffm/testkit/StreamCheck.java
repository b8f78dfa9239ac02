package io.vhostffm.testkit;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Checks a stream of numbered frames ({@link Frames}) as it arrived: every number from 0 to
 * {@code count - 1} exactly once, in order (on one queue), or in order on each queue it arrived on
 * (a multi-queue TAP keeps order per queue only). The answer is null or a sentence naming the
 * stream, the frame and what is wrong, to collect into a test's or a demo's list of problems.
 */
public final class StreamCheck {
    private StreamCheck() {}

    /**
     * Checks that {@code seqs} is exactly {@code 0 .. count-1}, in order.
     *
     * @return null when so, else what is wrong (count, missing, duplicated, or the first out of place)
     */
    public static String exactlyOnceInOrder(String what, List<Long> seqs, long count) {
        if (seqs.size() != count) {
            long missing = 0;
            Set<Long> seen = new HashSet<>(seqs);
            for (long s = 0; s < count; s++) {
                if (!seen.contains(s)) {
                    missing++;
                }
            }
            return what + ": " + seqs.size() + " frames for " + count + " sent (" + missing + " missing, "
                    + (seqs.size() - seen.size()) + " duplicated)";
        }
        for (int i = 0; i < seqs.size(); i++) {
            if (seqs.get(i) != i) {
                return what + ": frame " + i + " is number " + seqs.get(i) + " (out of order, lost or duplicated)";
            }
        }
        return null;
    }

    /**
     * Checks that {@code seqs} holds {@code 0 .. count-1} exactly once each, and in order on each
     * queue it arrived on ({@code arrivedOn}: for each frame, the queue pair it arrived on).
     *
     * @return null when so, else what is wrong
     */
    public static String exactlyOnceInOrderPerQueue(String what, List<Long> seqs, List<Integer> arrivedOn, long count) {
        if (arrivedOn.size() != seqs.size()) {
            return what + ": " + seqs.size() + " frames but " + arrivedOn.size() + " arrival queues";
        }
        Map<Integer, List<Long>> perQueue = new TreeMap<>();
        for (int i = 0; i < seqs.size(); i++) {
            perQueue.computeIfAbsent(arrivedOn.get(i), q -> new ArrayList<>()).add(seqs.get(i));
        }
        for (var queue : perQueue.entrySet()) {
            List<Long> on = queue.getValue();
            for (int i = 1; i < on.size(); i++) {
                if (on.get(i) <= on.get(i - 1)) {
                    return what + ": on queue pair " + queue.getKey() + " frame " + on.get(i) + " arrived after "
                            + on.get(i - 1);
                }
            }
        }
        List<Long> sorted = new ArrayList<>(seqs);
        sorted.sort(null);
        return exactlyOnceInOrder(what, sorted, count);
    }

    /**
     * As {@link #exactlyOnceInOrderPerQueue(String, List, List, long)}, over one stream of a saved
     * guest's record ({@link FakeGuestState#received()}).
     */
    public static String exactlyOnceInOrderPerQueue(String what, FakeGuestState.Stream stream, long count) {
        List<Long> seqs = new ArrayList<>(stream.count());
        for (long seq : stream.seqs()) {
            seqs.add(seq);
        }
        List<Integer> arrivedOn = new ArrayList<>(stream.count());
        for (int queue : stream.arrivedOn()) {
            arrivedOn.add(queue);
        }
        return exactlyOnceInOrderPerQueue(what, seqs, arrivedOn, count);
    }
}
