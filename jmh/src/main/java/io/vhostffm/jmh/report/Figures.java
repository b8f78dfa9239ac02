package io.vhostffm.jmh.report;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.Locale;

/** Formats scores for people: about three significant digits, thousands grouped. */
final class Figures {
    private Figures() {
    }

    /** Decimals that give {@code value} about three significant digits (0 to 4). */
    static int decimalsFor(double value) {
        double magnitude = Math.abs(value);
        if (magnitude == 0 || !Double.isFinite(magnitude)) {
            return 0;
        }
        int exponent = (int) Math.floor(Math.log10(magnitude));
        return Math.max(0, Math.min(4, 2 - exponent));
    }

    /** The value with the given decimals, thousands grouped with commas; "n/a" when not finite. */
    static String format(double value, int decimals) {
        if (!Double.isFinite(value)) {
            return "n/a";
        }
        DecimalFormat format = new DecimalFormat("#,##0", DecimalFormatSymbols.getInstance(Locale.ROOT));
        format.setMinimumFractionDigits(decimals);
        format.setMaximumFractionDigits(decimals);
        format.setRoundingMode(RoundingMode.HALF_UP);
        return format.format(new BigDecimal(value));
    }

    /** The value with about three significant digits. */
    static String format(double value) {
        return format(value, decimalsFor(value));
    }

    /**
     * "score ± error unit" with about three significant digits ("—" for none), the unit as the
     * metric gives it with {@code dropFromUnit} removed (e.g. "/op" for a time per operation).
     */
    static String withError(BenchmarkResult.Metric m, String dropFromUnit) {
        if (m == null) {
            return "—";
        }
        int decimals = decimalsFor(m.score());
        String error = Double.isFinite(m.error()) ? " ± " + format(m.error(), decimals) : "";
        return format(m.score(), decimals) + error + " " + m.unit().replace(dropFromUnit, "");
    }
}
