using AngleSharp.Html.Parser;
using Apm.Dashboard.Panels;
using Apm.Server;

namespace Apm.Dashboard.Tests;

/// <summary>The fleet row written as markup: every value that came from a JVM or a definition reads back exactly.</summary>
public sealed class FleetRowMarkupTests
{
    private const string Evil = "\"><script>alert(1)</script><img src=x onerror=alert(2)>'&amp;é😀";

    [Fact]
    public void Hostile_values_in_every_field_read_back_as_text_and_make_no_elements()
    {
        var jvm = new JvmSummary("host" + Evil + ":1:2", "host" + Evil, 4242, "Main" + Evil, "17", "vendor", "G1", DateTimeOffset.UnixEpoch,
            DateTimeOffset.UnixEpoch, "live" + Evil, "reason" + Evil);
        var definition = new FleetDefinition
        {
            Columns =
            [
                new FleetColumnDefinition { Id = "heap" + Evil, Title = "Heap" + Evil, Unit = "By", Max = new SeriesDefinition { Metric = "m" } },
                new FleetColumnDefinition { Id = "gc", Title = "GC" + Evil, Unit = "1" },
            ],
            Sparkline = new SeriesDefinition { Metric = "s", Title = "Trend" + Evil },
        };
        var row = new FleetRow(jvm, [512.0 * 1024 * 1024, 0.25], [1024.0 * 1024 * 1024, null], ["Rule" + Evil, "GcOverhead"], [1, 5, 3]);
        var link = Apm.Dashboard.Components.Pages.Fleet.JvmLink(jvm.Id);

        var html = FleetRowMarkup.Row(row, definition, link);
        var doc = new HtmlParser().ParseDocument("<table><tbody>" + html + "</tbody></table>");

        Assert.Empty(doc.QuerySelectorAll("script, img"));
        var tr = Assert.Single(doc.QuerySelectorAll("tbody > tr"));
        Assert.Equal(jvm.Id, tr.GetAttribute("data-jvm-id"));
        var a = tr.QuerySelector("th.jvm a")!;
        Assert.Equal(jvm.MainClass, a.TextContent);
        Assert.Equal(link, a.GetAttribute("href"));
        Assert.Equal("pid 4242 · " + jvm.Id, tr.QuerySelector("th.jvm span.sub")!.TextContent);
        var status = tr.QuerySelector("td[data-col=status]")!;
        Assert.Equal("status status-" + jvm.Status, status.GetAttribute("class"));
        Assert.Equal(jvm.Reason, status.GetAttribute("title"));
        Assert.Equal(FleetCell.StatusText(jvm.Status), status.TextContent);

        var cells = tr.QuerySelectorAll("td.num").ToList();
        Assert.Equal(2, cells.Count);
        Assert.Equal(definition.Columns[0].Id, cells[0].GetAttribute("data-col"));
        Assert.Equal(definition.Columns[0].Title, cells[0].GetAttribute("data-label"));
        Assert.Equal(FleetCell.Text(row, definition.Columns[0], 0), cells[0].QuerySelector("span.value")!.TextContent);
        Assert.StartsWith("512 MiB / 1", cells[0].QuerySelector("span.value")!.TextContent, StringComparison.Ordinal);
        var meter = cells[0].QuerySelector("meter")!;
        Assert.Equal("0.5", meter.GetAttribute("value"));
        Assert.Equal(definition.Columns[0].Title + " of maximum", meter.GetAttribute("aria-label"));
        Assert.Null(cells[1].QuerySelector("meter"));
        Assert.Equal("25 %", cells[1].QuerySelector("span.value")!.TextContent);

        var alerts = tr.QuerySelector("td[data-col=alerts]")!;
        Assert.Equal("alerts firing", alerts.GetAttribute("class"));
        Assert.Equal("Rule" + Evil + ", GcOverhead", alerts.TextContent);
        var spark = tr.QuerySelector("td.spark")!;
        Assert.Equal(definition.Sparkline.Title, spark.GetAttribute("data-label"));
        Assert.Equal(definition.Sparkline.Title, spark.QuerySelector("svg")!.GetAttribute("aria-label"));
        Assert.Equal(Sparkline.Points(row.Sparkline), spark.QuerySelector("polyline")!.GetAttribute("points"));
        Assert.Equal(6, tr.Children.Length); // the JVM, status, two values, alerts, trend
    }

    [Fact]
    public void A_row_without_reason_alerts_or_main_class_says_so()
    {
        var jvm = new JvmSummary("h:1:2", "h", 1, "", "17", "v", "Serial", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "gone", null);
        var definition = new FleetDefinition { Columns = [new FleetColumnDefinition { Id = "heap", Title = "Heap", Unit = "By", Max = new SeriesDefinition { Metric = "m" } }] };
        var row = new FleetRow(jvm, [null], [null], [], []);
        var doc = new HtmlParser().ParseDocument("<table><tbody>" + FleetRowMarkup.Row(row, definition, "jvm?id=h%3A1%3A2") + "</tbody></table>");
        var tr = doc.QuerySelector("tr")!;
        Assert.Equal("(unknown main class)", tr.QuerySelector("th.jvm a")!.TextContent);
        Assert.False(tr.QuerySelector("td[data-col=status]")!.HasAttribute("title"));
        Assert.Equal("○ gone", tr.QuerySelector("td[data-col=status]")!.TextContent);
        Assert.Equal("alerts", tr.QuerySelector("td[data-col=alerts]")!.GetAttribute("class"));
        Assert.Equal("none", tr.QuerySelector("td[data-col=alerts]")!.TextContent);
        Assert.Equal("0", tr.QuerySelector("meter")!.GetAttribute("value"));
        Assert.Equal("Trend", tr.QuerySelector("td.spark")!.GetAttribute("data-label"));
    }
}
