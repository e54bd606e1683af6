using System.Net.Http.Json;
using System.Text.Json;
using Apm.Alerts;
using Apm.Influx;
using Apm.Testing;
using Microsoft.Playwright;

namespace Apm.Dashboard.Tests;

/// <summary>
/// The dashboard in Debian's Chromium (Playwright, no browser download) over a real fixture JVM sampled by the real
/// collector → Kafka → aggregator → InfluxDB pipeline. Screenshots land in the test output's screenshots folder.
/// </summary>
public sealed class BrowserTests
{
    private static readonly string[] ChromiumArgs =
        ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

    private static string Screenshots => Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "screenshots")).FullName;

    [Fact]
    public async Task A_running_jvm_is_listed_charted_with_real_points_updated_live_and_its_firing_alert_shown()
    {
        var reports = Directory.CreateTempSubdirectory("apm-browser-reports-");
        await using var pipeline = await LivePipeline.StartAsync(new Dictionary<string, string?>
        {
            ["Apm:Reports:Directory"] = reports.FullName,
            ["Apm:Api:StaleAfter"] = "00:00:06",
            ["Apm:Dashboard:PollInterval"] = "00:00:01",
        });
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx128m", "-XX:+UseSerialGC"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        await pipeline.StartCollectorAsync(TimeSpan.FromSeconds(1));

        // The JVM reaches InfluxDB through the pipeline; find its id through the JSON API.
        var client = pipeline.Host.Client;
        string? id = null;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (id is null && DateTime.UtcNow < deadline)
        {
            var list = await client.GetFromJsonAsync<JsonElement>(new Uri("api/jvms", UriKind.Relative));
            id = list.EnumerateArray().Where(j => j.GetProperty("pid").GetInt32() == jvm.Pid).Select(j => j.GetProperty("id").GetString()).FirstOrDefault();
            if (id is null) await Task.Delay(300);
        }

        Assert.True(id is not null, "the fixture JVM never reached /api/jvms");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ChromiumArgs });
        var context = await browser.NewContextAsync(new() { BaseURL = pipeline.Host.BaseAddress.ToString(), ViewportSize = new() { Width = 1280, Height = 720 } });
        // The test projects run side by side on two cores: waits are generous (they end as soon as the condition holds).
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(90_000);
        Assertions.SetDefaultExpectTimeout(30_000);
        var page = await context.NewPageAsync();
        var problems = new List<string>();
        page.Console += (_, m) =>
        {
            if (m.Type == "error") problems.Add(m.Text);
        };
        page.PageError += (_, e) => problems.Add(e);
        page.Response += (_, r) =>
        {
            if (r.Status >= 400) problems.Add(r.Status + " " + r.Url);
        };

        // Fleet: the running JVM is listed, live, with its heap.
        await page.GotoAsync("/");
        var row = page.Locator($"tr[data-jvm-id=\"{id}\"]");
        await Assertions.Expect(row.Locator("th.jvm a")).ToHaveTextAsync("IdleService");
        await Assertions.Expect(row.Locator("td[data-col=status]")).ToHaveTextAsync("● live");
        await Assertions.Expect(row.Locator("td[data-col=heap] .value")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^[0-9.]+ (B|KiB|MiB) / 1[0-3][0-9] MiB$")); // -Xmx128m
        // The page applies live fleet events without a reload.
        await page.WaitForFunctionAsync("() => window.apmFleet && window.apmFleet.updates >= 2", null, new() { Timeout = 60_000 });
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "fleet-1280.png"), FullPage = true });

        // Keyboard: the first Tab reaches the skip link, and the JVM link is reachable by Tab and opens with Enter.
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Skip to content", await page.EvaluateAsync<string>("() => document.activeElement.textContent"));
        await row.Locator("th.jvm a").FocusAsync();
        Assert.Equal("IdleService", await page.EvaluateAsync<string>("() => document.activeElement.textContent"));

        // JVM page, opened from the focused fleet link with Enter.
        await page.Keyboard.PressAsync("Enter");
        try
        {
            // Poll the document's own location: a URL wait can miss a navigation that committed before it was armed.
            await page.WaitForFunctionAsync("() => location.pathname.endsWith('/jvm') && location.search.startsWith('?id=')", null, new() { Timeout = 90_000 });
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"Enter on the focused fleet link did not open the JVM page; the page is still at {page.Url}", ex);
        }

        await page.WaitForFunctionAsync("() => window.apmCharts && window.apmCharts.heap && window.apmCharts.heap.plot", null, new() { Timeout = 60_000 });
        // The last 15 minutes fit in the chart's points, so the chart carries every stored sample (the default hour
        // would show 5-second means, whose last bucket still fills while the test reads it).
        await page.GotoAsync("jvm?range=15m&id=" + Uri.EscapeDataString(id!));
        await page.WaitForFunctionAsync("() => window.apmCharts && window.apmCharts.heap && window.apmCharts.heap.plot", null, new() { Timeout = 60_000 });
        var heap = await page.EvaluateAsync<JsonElement>(
            "() => { const c = window.apmCharts.heap; return { labels: c.labels, n: c.plot.data[0].length, x: c.x, old: c.y[c.labels.indexOf('old')], max: c.y[c.maxIndex], series: c.plot.series.length, stepMs: c.stepMs }; }");
        var labels = heap.GetProperty("labels").EnumerateArray().Select(l => l.GetString()).ToList();
        Assert.Contains("eden", labels);
        Assert.Contains("old", labels);
        Assert.Equal("max heap", labels[^1]);
        Assert.True(heap.GetProperty("n").GetInt32() >= 2, "the heap chart has fewer than two points");
        Assert.Equal(labels.Count + 1, heap.GetProperty("series").GetInt32());

        // The chart's points are the stored ones: compare the old generation at the chart's last time with InfluxDB.
        var xs = heap.GetProperty("x").EnumerateArray().Select(v => v.GetInt64()).ToList();
        var olds = heap.GetProperty("old").EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Null ? (double?)null : v.GetDouble()).ToList();
        var lastIndex = olds.FindLastIndex(v => v is not null);
        using (var query = new InfluxQueryClient(pipeline.InfluxOptions))
        {
            // Chart times are Unix milliseconds; stored ones nanoseconds: the sample is the one within that millisecond.
            Assert.Equal(0, heap.GetProperty("stepMs").GetInt64());
            var stored = await query.QueryAsync(
                $"SELECT \"value\" FROM \"jvm.memory.used\" WHERE \"jvm_id\" = {InfluxQl.QuoteString(id!)} AND \"pool\" = 'old' AND time >= {xs[lastIndex]}ms AND time < {xs[lastIndex] + 1}ms");
            var series = Assert.Single(stored.Series);
            Assert.Equal(series.GetDouble(0, "value"), olds[lastIndex]);
            Assert.True(olds[lastIndex] > 0);
        }

        // The heap limit line is the sum of the pools' limits: -Xmx128m.
        var max = heap.GetProperty("max").EnumerateArray().Last(v => v.ValueKind != JsonValueKind.Null).GetDouble();
        Assert.InRange(max, 100 * 1024 * 1024, 130 * 1024 * 1024);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "jvm-1280.png"), FullPage = true });

        // A new sample appears without a reload: the same document (marker kept) gets a later point on its chart.
        await page.EvaluateAsync("() => { window.apmMarker = 'same document'; }");
        var lastBefore = xs[^1];
        await page.WaitForFunctionAsync(
            "last => { const c = window.apmCharts.heap; return c.appended > 0 && c.x[c.x.length - 1] > last && c.plot.data[0][c.plot.data[0].length - 1] * 1000 > last; }",
            lastBefore, new() { Timeout = 30_000 });
        Assert.Equal("same document", await page.EvaluateAsync<string>("() => window.apmMarker"));

        // Phone width: the same pages stay usable (screenshots are looked at by people, the layout is checked here).
        await page.SetViewportSizeAsync(390, 844);
        await page.WaitForTimeoutAsync(400);
        var overflow = await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth > window.innerWidth + 1");
        Assert.False(overflow, "the JVM page scrolls sideways at phone width");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "jvm-phone.png"), FullPage = false });
        await page.GotoAsync("/");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "fleet-phone.png"), FullPage = false });
        await page.SetViewportSizeAsync(1280, 720);

        // Alerts: a firing alert written to apm.alert shows, with its evidence.
        var now = DateTimeOffset.UtcNow;
        var lines = new LineProtocolBuilder();
        lines.Measurement(AlertSchema.Measurement).Tag(AlertSchema.HostTag, "browser-host").Tag(AlertSchema.JvmIdTag, id).Tag(AlertSchema.RuleTag, "FinalizerBacklog")
            .Tag(AlertSchema.AlertIdTag, id + "|FinalizerBacklog|1").Field(AlertSchema.StateField, "firing")
            .Field(AlertSchema.SummaryField, "The finalization queue grew from 0 to 5,200 objects in 10 minutes")
            .Field(AlertSchema.EvidenceField, """{"pending":"5200","slope_per_min":"520","top_class":"com.example.Statement"}""")
            .Field(AlertSchema.MainClassField, "IdleService")
            .Field(AlertSchema.StartedAtField, now.AddMinutes(-10).ToUnixTimeMilliseconds()).Field(AlertSchema.FiredAtField, now.ToUnixTimeMilliseconds()).Field(AlertSchema.ResolvedAtField, 0L)
            .Timestamp(now);
        await pipeline.Writer.WriteAsync(lines);
        await page.GotoAsync("/alerts");
        var alert = page.Locator("li.alert-firing");
        await Assertions.Expect(alert).ToHaveCountAsync(1);
        await Assertions.Expect(alert.Locator("h2")).ToContainTextAsync("Finalizer backlog growth");
        await Assertions.Expect(alert.Locator("dl.evidence")).ToContainTextAsync("com.example.Statement");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "alerts-1280.png"), FullPage = true });

        // Reports: a stored triage report is listed and opens.
        var reportId = Apm.Reports.ReportStore.NewId();
        new Apm.Reports.ReportStore(reports.FullName).Save(
            new Apm.Reports.ReportMeta(reportId, id!, "browser-host", "IdleService", now, "rule:FinalizerBacklog", id + "|FinalizerBacklog|1", "", "5,200 com.example.Statement objects held by java.util.TimerThread", 84L << 20),
            """{"findings":[]}"""u8,
            "<!DOCTYPE html><html><head><title>Triage</title></head><body><h1>Heap-dump triage</h1></body></html>"u8);
        await page.GotoAsync("/reports");
        var reportLink = page.Locator($"tr[data-report-id=\"{reportId}\"] th a");
        await Assertions.Expect(reportLink).ToHaveTextAsync("5,200 com.example.Statement objects held by java.util.TimerThread");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "reports-1280.png"), FullPage = true });
        await reportLink.ClickAsync();
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Heap-dump triage");

        // The fleet shows the alert too, live.
        await page.GotoAsync("/");
        await Assertions.Expect(page.Locator($"tr[data-jvm-id=\"{id}\"] td[data-col=alerts]")).ToHaveTextAsync("FinalizerBacklog");

        // The pipeline stops: the JVM page says its data is stale, without a reload.
        await page.GotoAsync("jvm?id=" + Uri.EscapeDataString(id!));
        // The alert is marked on the time axis (the markers the charts draw) and listed under the charts.
        var markers = await page.EvaluateAsync<JsonElement>("() => JSON.parse(document.querySelector('section[data-apm-jvm]').dataset.alerts)");
        Assert.Equal("FinalizerBacklog", Assert.Single(markers.EnumerateArray()).GetProperty("rule").GetString());
        await Assertions.Expect(page.Locator("section.jvm-alerts li.alert-firing")).ToContainTextAsync("FinalizerBacklog");
        await pipeline.StopCollectorAsync();
        await Assertions.Expect(page.Locator("#stale-banner")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Assertions.Expect(page.Locator("#stale-banner")).ToContainTextAsync("Data is stale");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "jvm-stale-1280.png"), FullPage = false });

        Assert.Empty(problems);
        reports.Delete(recursive: true);
    }
}
