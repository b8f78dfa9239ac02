package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

class SvgChartTest {

    @Test
    void oneBarPerResultAndGroupMemberWithLengthsToScale() throws Exception {
        Document svg = parse(SvgChart.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture()),
                "title <&>", "machine"));
        List<String> texts = texts(svg);
        assertTrue(texts.contains("title <&>"), "title escaped and read back: " + texts);
        assertTrue(texts.contains("SampleResyncBenchmark.resync  (avgt, ns/op, lower is better)"), texts.toString());
        assertTrue(texts.contains("SamplePingPong.pingPong  (thrpt, ops/s, higher is better)"), texts.toString());
        assertTrue(texts.contains("format=split queues=64"), texts.toString());
        assertTrue(texts.contains("total"), texts.toString());
        assertTrue(texts.contains("· driver"), texts.toString());
        assertTrue(texts.contains("1.23 ± 0.05"), texts.toString());
        assertTrue(texts.contains("◇ 0.500"), "score by CPU time beside the bar: " + texts);
        assertTrue(texts.contains("◇ 50.0M"), texts.toString());
        assertTrue(texts.contains("32.1M ± 1.2M"), texts.toString());
        assertTrue(texts.contains("format=split") && texts.contains("format=packed"),
                "legend for the parameter that splits the panel: " + texts);

        // Bars: 14 px high rects. Two in the resync panel, three in the ping-pong panel.
        List<Double> widths = new ArrayList<>();
        NodeList rects = svg.getElementsByTagName("rect");
        for (int i = 0; i < rects.getLength(); i++) {
            Element rect = (Element) rects.item(i);
            if (rect.getAttribute("height").equals("14")) {
                widths.add(Double.parseDouble(rect.getAttribute("width")));
            }
        }
        assertEquals(5, widths.size(), widths.toString());
        // Same panel, same scale: bar lengths in the ratio of the scores.
        assertEquals(1.2345678 / 0.98765, widths.get(0) / widths.get(1), 0.01);
        assertEquals(3.21E7 / 1.605E7, widths.get(2) / widths.get(3), 0.01);
    }

    @Test
    void emptyRunStillMakesAValidChart() throws Exception {
        Document svg = parse(SvgChart.render(List.of(), "t", "s"));
        assertTrue(texts(svg).contains("No results in this run."));
    }

    @Test
    void axisStepsAreRound() {
        assertEquals(1.0, SvgChart.niceStep(0.9));
        assertEquals(2.0, SvgChart.niceStep(1.3));
        assertEquals(2.5, SvgChart.niceStep(2.2));
        assertEquals(5e6, SvgChart.niceStep(3.3e6));
        assertEquals(0.01, SvgChart.niceStep(0.01), 1e-12);
        assertEquals("2.5", SvgChart.tickLabel(2.5));
        assertEquals("30M", SvgChart.tickLabel(3e7));
        assertEquals("0", SvgChart.tickLabel(0));
        assertEquals("15k", SvgChart.tickLabel(15000));
        assertEquals("0.988", SvgChart.withError(0.98765, Double.NaN));
        assertEquals("16.1M ± 0.6M", SvgChart.withError(1.605E7, 600000));
    }

    private static Document parse(String svg) throws Exception {
        return DocumentBuilderFactory.newInstance().newDocumentBuilder()
                .parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
    }

    private static List<String> texts(Document svg) {
        List<String> texts = new ArrayList<>();
        NodeList nodes = svg.getElementsByTagName("text");
        for (int i = 0; i < nodes.getLength(); i++) {
            texts.add(nodes.item(i).getTextContent());
        }
        return texts;
    }
}
