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
        var (jvm, id) = await StartIdleServiceAsync(pipeline);
        using var disposeJvm = jvm;
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var problems = new List<string>();
        var page = await NewPageAsync(browser, pipeline, problems);

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
        await AssertFitsTheWidthAsync(page, "the JVM page");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "jvm-phone.png"), FullPage = false });
        await page.GotoAsync("/");
        await Assertions.Expect(page.Locator($"tr[data-jvm-id=\"{id}\"]")).ToHaveCountAsync(1);
        await AssertFitsTheWidthAsync(page, "the fleet page");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "fleet-phone.png"), FullPage = true });
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
        await page.SetViewportSizeAsync(390, 844);
        await page.WaitForTimeoutAsync(400);
        await AssertFitsTheWidthAsync(page, "the alerts page");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "alerts-phone.png"), FullPage = true });
        await page.SetViewportSizeAsync(1280, 720);

        // Reports: a stored triage report is listed and opens; the alert that asked for it links to it once the
        // aggregator has indexed it (apm.report, as its report consumer writes it).
        var reportId = Apm.Reports.ReportStore.NewId();
        new Apm.Reports.ReportStore(reports.FullName).Save(
            new Apm.Reports.ReportMeta(reportId, id!, "browser-host", "IdleService", now, "rule:FinalizerBacklog", id + "|FinalizerBacklog|1", "", "5,200 com.example.Statement objects held by java.util.TimerThread", 84L << 20),
            """{"findings":[]}"""u8,
            "<!DOCTYPE html><html><head><title>Triage</title></head><body><h1>Heap-dump triage</h1></body></html>"u8);
        var indexed = new LineProtocolBuilder();
        indexed.Measurement("apm.report").Tag("alert_id", id + "|FinalizerBacklog|1").Tag("host", "browser-host").Tag("jvm_id", id).Tag("report_id", reportId)
            .Field("trigger", "rule:FinalizerBacklog").Field("top_finding", "5,200 com.example.Statement objects").Field("dump_bytes", 84L << 20).Field("command_id", "")
            .Timestamp(now);
        await pipeline.Writer.WriteAsync(indexed);
        await page.ReloadAsync();
        await alert.Locator("p.report-link a").ClickAsync();
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Heap-dump triage");
        Assert.EndsWith("/reports/" + reportId, page.Url, StringComparison.Ordinal);

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
        // ...and drawn: the chart's last drawing put the marker inside its plot area, at the alert's time.
        await page.WaitForFunctionAsync("() => window.apmCharts?.heap?.markersDrawn?.length > 0", null, new() { Timeout = 60_000 });
        var drawn = await page.EvaluateAsync<JsonElement>("() => ({ markers: window.apmCharts.heap.markersDrawn, width: window.apmCharts.heap.plotWidth, x0: window.apmCharts.heap.plot.scales.x.min, x1: window.apmCharts.heap.plot.scales.x.max })");
        var marker = Assert.Single(drawn.GetProperty("markers").EnumerateArray());
        Assert.Equal("FinalizerBacklog", marker.GetProperty("rule").GetString());
        Assert.Equal(now.ToUnixTimeMilliseconds(), marker.GetProperty("timeMs").GetInt64());
        var left = marker.GetProperty("left").GetDouble();
        var width = drawn.GetProperty("width").GetDouble();
        Assert.InRange(left, 0, width);
        // Its position is the alert's time on the axis, to within a pixel.
        var (x0, x1) = (drawn.GetProperty("x0").GetDouble(), drawn.GetProperty("x1").GetDouble());
        Assert.InRange(left, (((now.ToUnixTimeMilliseconds() / 1000.0) - x0) / (x1 - x0) * width) - 1, (((now.ToUnixTimeMilliseconds() / 1000.0) - x0) / (x1 - x0) * width) + 1);
        await Assertions.Expect(page.Locator("section.jvm-alerts li.alert-firing")).ToContainTextAsync("FinalizerBacklog");
        await pipeline.StopCollectorAsync();
        await Assertions.Expect(page.Locator("#stale-banner")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Assertions.Expect(page.Locator("#stale-banner")).ToContainTextAsync("Data is stale");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "jvm-stale-1280.png"), FullPage = false });

        // An alert that fired after the JVM's last sample is still marked: the time axis reaches it.
        var later = DateTimeOffset.UtcNow;
        var afterStop = new LineProtocolBuilder();
        afterStop.Measurement(AlertSchema.Measurement).Tag(AlertSchema.HostTag, "browser-host").Tag(AlertSchema.JvmIdTag, id).Tag(AlertSchema.RuleTag, "GcOverhead")
            .Tag(AlertSchema.AlertIdTag, id + "|GcOverhead|1").Field(AlertSchema.StateField, "firing").Field(AlertSchema.SummaryField, "GC took 40 % of the time")
            .Field(AlertSchema.EvidenceField, "{}").Field(AlertSchema.MainClassField, "IdleService")
            .Field(AlertSchema.StartedAtField, later.AddMinutes(-1).ToUnixTimeMilliseconds()).Field(AlertSchema.FiredAtField, later.ToUnixTimeMilliseconds()).Field(AlertSchema.ResolvedAtField, 0L)
            .Timestamp(later);
        await pipeline.Writer.WriteAsync(afterStop);
        await page.ReloadAsync();
        await page.WaitForFunctionAsync("() => window.apmCharts?.heap?.markersDrawn?.length === 2", null, new() { Timeout = 60_000 });
        var both = await page.EvaluateAsync<JsonElement>("() => ({ markers: window.apmCharts.heap.markersDrawn, width: window.apmCharts.heap.plotWidth, lastX: window.apmCharts.heap.x[window.apmCharts.heap.x.length - 1] })");
        Assert.True(both.GetProperty("lastX").GetInt64() < later.ToUnixTimeMilliseconds(), "the JVM sampled after its collector stopped");
        var gc = both.GetProperty("markers").EnumerateArray().Single(m => m.GetProperty("rule").GetString() == "GcOverhead");
        Assert.InRange(gc.GetProperty("left").GetDouble(), both.GetProperty("width").GetDouble() - 1, both.GetProperty("width").GetDouble() + 0.5);

        Assert.Empty(problems);
        reports.Delete(recursive: true);
    }

    [Fact]
    public async Task A_jvm_that_starts_after_the_fleet_page_was_drawn_appears_and_one_that_exits_leaves_without_a_reload()
    {
        await using var pipeline = await LivePipeline.StartAsync(new Dictionary<string, string?> { ["Apm:Dashboard:PollInterval"] = "00:00:01" });
        var (first, firstId) = await StartIdleServiceAsync(pipeline);
        using var disposeFirst = first;
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var problems = new List<string>();
        var page = await NewPageAsync(browser, pipeline, problems);
        // Live JVMs only, sorted by name descending: the page's own filter and sort must hold for the rows that arrive.
        const string Query = "?status=live&sort=jvm&dir=desc";
        await page.GotoAsync("/" + Query);
        await Assertions.Expect(page.Locator($"tr[data-jvm-id=\"{firstId}\"] th.jvm a")).ToHaveTextAsync("IdleService");
        await page.WaitForFunctionAsync("() => window.apmFleet && window.apmFleet.updates >= 1", null, new() { Timeout = 60_000 });
        await page.EvaluateAsync("() => { window.apmMarker = 'same document'; }");
        var refreshesBefore = await page.EvaluateAsync<int>("() => window.apmFleet.refreshes");

        // A second JVM starts now: the collector finds it, and the page shows its row without navigating.
        var second = JavaFixture.Start("PerfDataSleeper", ["-Xmx64m", "-XX:+UseSerialGC"]);
        try
        {
            await second.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
            var secondId = await JvmIdAsync(pipeline, second.Pid);
            var row = page.Locator($"tr[data-jvm-id=\"{secondId}\"]");
            await Assertions.Expect(row.Locator("th.jvm a")).ToHaveTextAsync("PerfDataSleeper", new() { Timeout = 60_000 });
            await Assertions.Expect(row.Locator("td[data-col=status]")).ToHaveTextAsync("● live");
            Assert.Equal("same document", await page.EvaluateAsync<string>("() => window.apmMarker"));
            Assert.True(await page.EvaluateAsync<int>("() => window.apmFleet.refreshes") > refreshesBefore, "the row arrived without a fetch of the rows");
            Assert.EndsWith("/" + Query, page.Url, StringComparison.Ordinal);
            // Sorted by name, descending, as the page was asked (other JVMs of this machine may be listed around them).
            var order = (await page.Locator("tr[data-jvm-id]").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.jvmId)"))
                .Where(x => x == firstId || x == secondId).ToList();
            Assert.Equal([secondId, firstId], order);
            Assert.Equal("descending", await page.Locator("thead th", new() { HasText = "JVM" }).First.GetAttributeAsync("aria-sort"));
            // The new row is a full row: a link to its page, values, and live updates like the others.
            Assert.Equal("jvm?id=" + Uri.EscapeDataString(secondId), await row.Locator("th.jvm a").GetAttributeAsync("href"));
            await Assertions.Expect(row.Locator("td[data-col=heap] .value")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^[0-9.]+ (B|KiB|MiB) / [0-9]+ MiB$"));
            await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "fleet-new-jvm-1280.png"), FullPage = true });

            // It exits: its status turns "gone", so this live-only page drops the row, again without navigating.
            second.Kill();
            await Assertions.Expect(row).ToHaveCountAsync(0, new() { Timeout = 60_000 });
            await Assertions.Expect(page.Locator($"tr[data-jvm-id=\"{firstId}\"]")).ToHaveCountAsync(1);
            Assert.Equal("same document", await page.EvaluateAsync<string>("() => window.apmMarker"));
        }
        finally
        {
            second.Dispose();
        }

        Assert.Empty(problems);
    }

    /// <summary>Starts the IdleService fixture (128 MB heap) and the collector, and waits for the JVM's id in the JSON API.</summary>
    private static async Task<(JavaFixture Jvm, string Id)> StartIdleServiceAsync(LivePipeline pipeline)
    {
        var jvm = JavaFixture.Start("IdleService", ["-Xmx128m", "-XX:+UseSerialGC"]);
        try
        {
            await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
            await pipeline.StartCollectorAsync(TimeSpan.FromSeconds(1));
            return (jvm, await JvmIdAsync(pipeline, jvm.Pid));
        }
        catch
        {
            jvm.Dispose();
            throw;
        }
    }

    /// <summary>The JVM's id once the pipeline has carried it to the JSON API.</summary>
    private static async Task<string> JvmIdAsync(LivePipeline pipeline, int pid)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var list = await pipeline.Host.Client.GetFromJsonAsync<JsonElement>(new Uri("api/jvms", UriKind.Relative));
            var id = list.EnumerateArray().Where(j => j.GetProperty("pid").GetInt32() == pid).Select(j => j.GetProperty("id").GetString()).FirstOrDefault();
            if (id is not null) return id;
            await Task.Delay(300);
        }

        throw new TimeoutException($"the fixture JVM (pid {pid}) never reached /api/jvms");
    }

    private static Task<IBrowser> LaunchAsync(IPlaywright playwright) =>
        playwright.Chromium.LaunchAsync(new() { ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ChromiumArgs });

    /// <summary>A 1280×720 page on the dashboard that collects console errors, page errors and failed requests.</summary>
    private static async Task<IPage> NewPageAsync(IBrowser browser, LivePipeline pipeline, List<string> problems)
    {
        var context = await browser.NewContextAsync(new() { BaseURL = pipeline.Host.BaseAddress.ToString(), ViewportSize = new() { Width = 1280, Height = 720 } });
        // The test projects run side by side on two cores: waits are generous (they end as soon as the condition holds).
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(90_000);
        Assertions.SetDefaultExpectTimeout(30_000);
        var page = await context.NewPageAsync();
        page.Console += (_, m) =>
        {
            if (m.Type == "error") problems.Add(m.Text);
        };
        page.PageError += (_, e) => problems.Add(e);
        page.Response += (_, r) =>
        {
            if (r.Status >= 400) problems.Add(r.Status + " " + r.Url);
        };
        return page;
    }

    /// <summary>
    /// The page does not scroll sideways, and every table either fits or scrolls inside its own container, which fits.
    /// </summary>
    private static async Task AssertFitsTheWidthAsync(IPage page, string what)
    {
        var layout = await page.EvaluateAsync<JsonElement>("""
            () => ({
              viewport: window.innerWidth,
              page: document.documentElement.scrollWidth,
              body: document.body.scrollWidth,
              tables: [...document.querySelectorAll('main table')].map(t => {
                const box = t.closest('.table-scroll');
                return {
                  width: t.getBoundingClientRect().width,
                  right: t.getBoundingClientRect().right,
                  scroller: box ? getComputedStyle(box).overflowX : null,
                  scrollerRight: box ? box.getBoundingClientRect().right : null,
                };
              }),
            })
            """);
        var viewport = layout.GetProperty("viewport").GetDouble();
        Assert.True(layout.GetProperty("page").GetDouble() <= viewport + 1, $"{what} scrolls sideways at {viewport} px: {layout}");
        Assert.True(layout.GetProperty("body").GetDouble() <= viewport + 1, $"{what}'s body is wider than {viewport} px: {layout}");
        foreach (var t in layout.GetProperty("tables").EnumerateArray())
        {
            if (t.GetProperty("right").GetDouble() <= viewport + 1) continue;
            Assert.True(t.GetProperty("scroller").GetString() is "auto" or "scroll", $"{what} has a table wider than the screen outside a scrolling container: {layout}");
            Assert.True(t.GetProperty("scrollerRight").GetDouble() <= viewport + 1, $"{what}'s table container is wider than the screen: {layout}");
        }
    }
}
