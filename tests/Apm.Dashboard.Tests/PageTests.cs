using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using AngleSharp.Html.Parser;

namespace Apm.Dashboard.Tests;

/// <summary>Every page and the event stream over HTTP, against a real influxd filled by <see cref="SeededInflux"/>.</summary>
public sealed partial class PageTests(SeededInflux seed) : IClassFixture<SeededInflux>
{
    private static readonly HtmlParser Parser = new();

    private HttpClient Client => seed.Host.Client;

    [Fact]
    public async Task The_fleet_page_lists_every_jvm_grouped_by_host_with_its_values()
    {
        var (response, html) = await GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = Parser.ParseDocument(html);
        var rows = doc.QuerySelectorAll("tr[data-jvm-id]").ToDictionary(r => r.GetAttribute("data-jvm-id")!);
        Assert.Equal([SeededInflux.JvmA, SeededInflux.JvmGone, SeededInflux.JvmB, SeededInflux.JvmUnreadable], rows.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["host-a · 2 JVMs", "host-b · 1 JVMs", "host-c · 1 JVMs"], doc.QuerySelectorAll("tr.host th").Select(t => t.TextContent.Trim()));

        var a = rows[SeededInflux.JvmA];
        Assert.Equal("com.example.OrderService", a.QuerySelector("th.jvm a")!.TextContent);
        Assert.Equal("jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmA), a.QuerySelector("th.jvm a")!.GetAttribute("href"));
        Assert.Equal("● live", a.QuerySelector("td[data-col=status]")!.TextContent);
        // Heap: eden 10 MiB + 299 KiB, survivor 1 MiB, old 50 MiB of 100 + 10 + 200 MiB.
        Assert.Equal("61 MiB / 310 MiB", a.QuerySelector("td[data-col=heap] .value")!.TextContent);
        Assert.Equal("40 MiB", a.QuerySelector("td[data-col=old-after-gc] .value")!.TextContent);
        Assert.Equal("0.5 %", a.QuerySelector("td[data-col=gc-overhead] .value")!.TextContent);
        Assert.Equal("0", a.QuerySelector("td[data-col=finalizer-pending] .value")!.TextContent);
        Assert.Equal("1,270", a.QuerySelector("td[data-col=finalizer-registered] .value")!.TextContent);
        Assert.Equal("none", a.QuerySelector("td[data-col=alerts]")!.TextContent);
        Assert.InRange(a.QuerySelector("td.spark polyline")!.GetAttribute("points")!.Split(' ').Length, 5, 6); // 10 minutes in 2-minute steps

        var b = rows[SeededInflux.JvmB];
        Assert.Equal(SeededInflux.HostileMain, b.QuerySelector("th.jvm a")!.TextContent);
        Assert.Equal("7", b.QuerySelector("td[data-col=finalizer-pending] .value")!.TextContent);
        Assert.Equal("FinalizerBacklog", b.QuerySelector("td[data-col=alerts]")!.TextContent);
        Assert.Equal("○ gone", rows[SeededInflux.JvmGone].QuerySelector("td[data-col=status]")!.TextContent);
        Assert.Equal("process exited", rows[SeededInflux.JvmGone].QuerySelector("td[data-col=status]")!.GetAttribute("title"));
    }

    [Fact]
    public async Task A_jvm_whose_counters_cannot_be_read_is_listed_as_unreadable_with_the_collectors_reason()
    {
        var (_, html) = await GetAsync("/?status=unreadable");
        var row = Assert.Single(Parser.ParseDocument(html).QuerySelectorAll("tr[data-jvm-id]"));
        Assert.Equal(SeededInflux.JvmUnreadable, row.GetAttribute("data-jvm-id"));
        var status = row.QuerySelector("td[data-col=status]")!;
        Assert.Equal("⚠ unreadable", status.TextContent);
        Assert.Equal("status status-unreadable", status.ClassName);
        Assert.Equal(SeededInflux.UnreadableReason, status.GetAttribute("title"));
        // Nothing was read from it: no main class, no values, no trend.
        Assert.Equal("(unknown main class)", row.QuerySelector("th.jvm a")!.TextContent);
        Assert.Equal("pid 400 · " + SeededInflux.JvmUnreadable, row.QuerySelector("th.jvm .sub")!.TextContent);
        Assert.Equal("–", row.QuerySelector("td[data-col=heap] .value")!.TextContent);
        Assert.Equal(string.Empty, row.QuerySelector("td.spark polyline")!.GetAttribute("points"));
    }

    [Fact]
    public async Task The_fleet_rows_fragment_is_the_pages_table_alone_with_its_filter_and_sort_and_every_known_jvm()
    {
        var (response, html) = await GetAsync("/dashboard/fleet-rows?q=host-a&sort=heap&dir=asc");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("no-store", response.Headers.CacheControl!.ToString());
        // The same rows, in the same order, as the page with that query string; no layout around them.
        var (_, page) = await GetAsync("/?q=host-a&sort=heap&dir=asc");
        Assert.Equal([SeededInflux.JvmGone, SeededInflux.JvmA], Ids(html));
        Assert.Equal(Ids(page), Ids(html));
        var doc = Parser.ParseDocument(html);
        Assert.Null(doc.QuerySelector("header"));
        Assert.Empty(doc.QuerySelectorAll("script"));
        var container = doc.QuerySelector("#fleet-rows[data-apm-fleet]")!;
        Assert.Equal(
            Parser.ParseDocument(page).QuerySelector("#fleet-rows")!.QuerySelector("table")!.OuterHtml,
            container.QuerySelector("table")!.OuterHtml);
        // Every JVM of the fleet with its status (the script compares live events with it), filtered or not.
        var known = JsonSerializer.Deserialize<Dictionary<string, string>>(container.GetAttribute("data-known")!)!;
        Assert.Equal(new Dictionary<string, string>
        {
            [SeededInflux.JvmA] = "live", [SeededInflux.JvmGone] = "gone", [SeededInflux.JvmB] = "live", [SeededInflux.JvmUnreadable] = "unreadable",
        }, known);

        // The hostile main class is encoded here too.
        var (_, b) = await GetAsync("/dashboard/fleet-rows?q=host-b");
        Assert.DoesNotContain("<script>alert", b, StringComparison.Ordinal);
        Assert.Equal(SeededInflux.HostileMain, Parser.ParseDocument(b).QuerySelector("th.jvm a")!.TextContent);
    }

    [Fact]
    public async Task The_fleet_page_filters_and_sorts_on_the_server()
    {
        var (_, filtered) = await GetAsync("/?q=host-b");
        Assert.Equal([SeededInflux.JvmB], Ids(filtered));
        var (_, gone) = await GetAsync("/?status=gone");
        Assert.Equal([SeededInflux.JvmGone], Ids(gone));
        var (_, byHeap) = await GetAsync("/?sort=heap&dir=desc&q=host-a");
        Assert.Equal([SeededInflux.JvmA, SeededInflux.JvmGone], Ids(byHeap));
        var (_, byHeapAsc) = await GetAsync("/?sort=heap&dir=asc&q=host-a");
        Assert.Equal([SeededInflux.JvmGone, SeededInflux.JvmA], Ids(byHeapAsc));
        var th = Parser.ParseDocument(byHeap).QuerySelectorAll("thead th").First(t => t.TextContent.Contains("Heap used", StringComparison.Ordinal));
        Assert.Equal("descending", th.GetAttribute("aria-sort"));
    }

    [Fact]
    public async Task Strings_from_jvms_are_encoded_on_every_page()
    {
        foreach (var path in new[] { "/", "/jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmB), "/alerts", "/alerts?state=all" })
        {
            var (response, html) = await GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.DoesNotContain("<script>alert", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
            // The only script elements are the two same-origin files of the shell: nothing inline.
            var scripts = Parser.ParseDocument(html).QuerySelectorAll("script");
            Assert.Equal(["_apm/lib/uPlot.iife.min.js", "_apm/app.js"], scripts.Select(s => s.GetAttribute("src")));
            Assert.All(scripts, s => Assert.Equal(string.Empty, s.TextContent));
        }

        var (_, jvm) = await GetAsync("/jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmB));
        Assert.Contains("&lt;script&gt;alert(&quot;main&quot;)&lt;/script&gt;", jvm, StringComparison.Ordinal);
        Assert.DoesNotContain("<b onmouseover", jvm, StringComparison.Ordinal);
        Assert.Equal(SeededInflux.HostileCommand, Parser.ParseDocument(jvm).QuerySelector("dl.identity .wide code")!.TextContent);
        var (_, alerts) = await GetAsync("/alerts");
        Assert.Contains("&lt;/dd&gt;&lt;script&gt;alert(&#x27;evidence&#x27;)&lt;/script&gt;", alerts, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_jvm_page_carries_every_panel_with_the_stored_points()
    {
        // 15 minutes fit in 800 points at 2-second samples: raw points (the default hour would be 5-second means).
        var (response, html) = await GetAsync("/jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmA) + "&range=15m");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = Parser.ParseDocument(html);
        Assert.Equal("com.example.OrderService", doc.QuerySelector("h1")!.TextContent);
        Assert.Contains("host-a", doc.QuerySelector("dl.identity")!.TextContent, StringComparison.Ordinal);
        var charts = doc.QuerySelectorAll("div.chart[data-chart]").Select(e => JsonDocument.Parse(e.GetAttribute("data-chart")!).RootElement).ToDictionary(c => c.GetProperty("id").GetString()!);
        Assert.Equal(["heap", "old-after-gc", "gc-collections", "gc-time", "gc-overhead", "finalizer-pending", "finalizer-registered", "threads", "safepoints", "safepoint-time"], charts.Keys);

        var heap = charts["heap"];
        Assert.True(heap.GetProperty("stacked").GetBoolean());
        Assert.Equal(0, heap.GetProperty("stepMs").GetInt64());
        Assert.Equal(["eden", "old", "survivor-0", "max heap"], heap.GetProperty("labels").EnumerateArray().Select(l => l.GetString()));
        Assert.Equal(3, heap.GetProperty("maxIndex").GetInt32());
        var x = heap.GetProperty("x").EnumerateArray().Select(v => v.GetInt64()).ToList();
        Assert.Equal(SeededInflux.Samples, x.Count);
        Assert.Equal(seed.LastSampleMs, x[^1]);
        var eden = heap.GetProperty("y")[0].EnumerateArray().Select(v => v.GetDouble()).ToList();
        Assert.Equal(10 * SeededInflux.Mi + (299 * 1024), eden[^1]);
        Assert.All(heap.GetProperty("y")[3].EnumerateArray(), v => Assert.Equal(310 * SeededInflux.Mi, v.GetDouble()));

        // Counters become per-second rates: one collection and 10 ms of GC per 2 s sample.
        var rates = charts["gc-collections"].GetProperty("y")[0].EnumerateArray().Select(v => v.GetDouble()).ToList();
        Assert.Equal(SeededInflux.Samples - 1, rates.Count);
        Assert.All(rates, r => Assert.Equal(0.5, r, 6));
        Assert.All(charts["gc-time"].GetProperty("y")[0].EnumerateArray(), r => Assert.Equal(0.005, r.GetDouble(), 6));
        Assert.Equal(["java.lang.ref.Finalizer", SeededInflux.HostileClass], charts["finalizer-registered"].GetProperty("labels").EnumerateArray().Select(l => l.GetString()));
        Assert.Equal(["total"], charts["finalizer-pending"].GetProperty("labels").EnumerateArray().Select(l => l.GetString()));
    }

    [Fact]
    public async Task The_jvm_page_shows_the_last_hour_live_when_no_range_is_given()
    {
        var before = DateTimeOffset.UtcNow;
        var (response, html) = await GetAsync("/jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmA));
        var after = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = Parser.ParseDocument(html);
        var active = Assert.Single(doc.QuerySelectorAll(".presets a.active"));
        Assert.Equal("1h", active.TextContent);
        Assert.Equal("true", active.GetAttribute("aria-current"));
        Assert.Equal("true", doc.QuerySelector("section[data-apm-jvm]")!.GetAttribute("data-live"));
        // The range starts an hour before the request (the form shows it, to the second) and has no end.
        var from = DateTimeOffset.Parse(doc.QuerySelector("input[name=from]")!.GetAttribute("value")! + "Z", System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(from, before.AddHours(-1).AddSeconds(-1), after.AddHours(-1));
        Assert.Equal(string.Empty, doc.QuerySelector("input[name=to]")!.GetAttribute("value") ?? string.Empty);
        // An hour is 3,600 s over 800 points: 5-second means, and all ten seeded minutes are in it.
        var heap = JsonDocument.Parse(doc.QuerySelector("#chart-heap")!.GetAttribute("data-chart")!).RootElement;
        Assert.Equal(5_000, heap.GetProperty("stepMs").GetInt64());
        var x = heap.GetProperty("x").EnumerateArray().Select(v => v.GetInt64()).ToList();
        Assert.InRange(x.Count, (SeededInflux.Samples * 2 / 5) - 1, (SeededInflux.Samples * 2 / 5) + 1);
        Assert.InRange(x[0], seed.LastSampleMs - (SeededInflux.Samples * 2_000) - 5_000, seed.LastSampleMs - (SeededInflux.Samples * 2_000) + 5_000);
    }

    [Fact]
    public async Task The_jvm_page_charts_pending_finalizers_by_class_beside_the_total()
    {
        var (_, html) = await GetAsync("/jvm?range=15m&id=" + Uri.EscapeDataString(SeededInflux.JvmB));
        var doc = Parser.ParseDocument(html);
        var pending = JsonDocument.Parse(doc.QuerySelector("#chart-finalizer-pending")!.GetAttribute("data-chart")!).RootElement;
        Assert.Equal(["total", SeededInflux.HostileClass], pending.GetProperty("labels").EnumerateArray().Select(l => l.GetString()));
        var byClass = pending.GetProperty("y")[1].EnumerateArray().Select(v => v.GetDouble()).ToList();
        Assert.Equal(SeededInflux.Samples, byClass.Count);
        Assert.All(byClass, v => Assert.Equal(7, v));
        // The class name is a legend label and a row of the "Latest values" table, encoded in both.
        var latest = doc.QuerySelectorAll("#panel-finalizer-pending table.latest tr").ToDictionary(r => r.QuerySelector("th")!.TextContent, r => r.QuerySelector("td")!.TextContent);
        Assert.Equal("7", latest[SeededInflux.HostileClass]);
        Assert.Equal("7", latest["total"]);
        Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_long_range_is_downsampled_by_the_server()
    {
        var (_, html) = await GetAsync("/jvm?id=" + Uri.EscapeDataString(SeededInflux.JvmA) + "&range=7d");
        var heap = JsonDocument.Parse(Parser.ParseDocument(html).QuerySelector("#chart-heap")!.GetAttribute("data-chart")!).RootElement;
        var step = heap.GetProperty("stepMs").GetInt64();
        Assert.Equal(756_000, step); // 7 days / 800 points, rounded up to whole seconds
        var x = heap.GetProperty("x").GetArrayLength();
        Assert.InRange(x, 1, 3); // ten minutes of samples fall in one or two 756-second buckets
        Assert.Contains("mean per 756 s", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_custom_range_is_accepted_and_bad_ranges_are_refused_with_a_reason()
    {
        var from = DateTimeOffset.FromUnixTimeMilliseconds(seed.LastSampleMs).AddMinutes(-2).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        var to = DateTimeOffset.FromUnixTimeMilliseconds(seed.LastSampleMs).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        var (ok, html) = await GetAsync($"/jvm?id={Uri.EscapeDataString(SeededInflux.JvmA)}&from={from}&to={to}");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var section = Parser.ParseDocument(html).QuerySelector("section[data-apm-jvm]")!;
        Assert.Equal("false", section.GetAttribute("data-live"));
        var heap = JsonDocument.Parse(Parser.ParseDocument(html).QuerySelector("#chart-heap")!.GetAttribute("data-chart")!).RootElement;
        Assert.InRange(heap.GetProperty("x").GetArrayLength(), 60, 61);

        var (bad, badHtml) = await GetAsync($"/jvm?id={Uri.EscapeDataString(SeededInflux.JvmA)}&from=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("from: expected a time", badHtml, StringComparison.Ordinal);
        var (unknown, unknownHtml) = await GetAsync("/jvm?id=no-such-jvm");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("No JVM with this id", unknownHtml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_alerts_page_shows_firing_alerts_with_evidence_and_every_rules_documentation()
    {
        var (response, html) = await GetAsync("/alerts");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = Parser.ParseDocument(html);
        var alert = Assert.Single(doc.QuerySelectorAll("li.alert"));
        Assert.Contains("alert-firing", alert.ClassName, StringComparison.Ordinal);
        Assert.Contains("Finalizer backlog growth", alert.QuerySelector("h2")!.TextContent, StringComparison.Ordinal);
        Assert.Equal(SeededInflux.HostileMain, alert.QuerySelector("p.who a")!.TextContent);
        Assert.Contains(SeededInflux.HostileClass, alert.QuerySelector("p.summary-text")!.TextContent, StringComparison.Ordinal);
        var evidence = alert.QuerySelectorAll("dl.evidence div").ToDictionary(d => d.QuerySelector("dt")!.TextContent, d => d.QuerySelector("dd")!.TextContent);
        Assert.Equal("7", evidence["pending"]);
        Assert.Equal(SeededInflux.HostileEvidence, evidence["topClass"]);
        // The rule's suggested fixes, in order, encoded.
        Assert.Equal(["Find the slow finalize() method.", SeededInflux.HostileFix], alert.QuerySelectorAll("div.fixes ol li").Select(li => li.TextContent));
        Assert.DoesNotContain("<script>alert('fix')", html, StringComparison.Ordinal);
        Assert.Equal(Apm.Alerts.Rules.RuleCatalog.All.Select(r => "rule-" + r.Id), doc.QuerySelectorAll("article.rule").Select(r => r.Id));

        // The heap-dump triage report this alert asked for (apm.report) is linked, and the link opens it.
        var report = alert.QuerySelector("p.report-link a")!;
        Assert.Equal("reports/" + SeededInflux.ReportId, report.GetAttribute("href"));
        using (var opened = await Client.GetAsync(new Uri(report.GetAttribute("href")!, UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, opened.StatusCode);
            Assert.Contains("Triage report", await opened.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var (_, resolved) = await GetAsync("/alerts?state=resolved");
        var r = Assert.Single(Parser.ParseDocument(resolved).QuerySelectorAll("li.alert"));
        Assert.Contains("GC overhead", r.QuerySelector("h2")!.TextContent, StringComparison.Ordinal);
        Assert.Contains("resolved", r.QuerySelector("p.when")!.TextContent, StringComparison.Ordinal);
        Assert.Null(r.QuerySelector("p.report-link")); // it asked for no report
        Assert.Null(r.QuerySelector("div.fixes")); // and had no fixes

        // Withdrawn alerts (pending ones that cleared) have their own tab.
        var (_, withdrawn) = await GetAsync("/alerts?state=withdrawn");
        Assert.Contains("aria-current=\"page\">withdrawn<", withdrawn, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_reports_page_lists_the_stored_reports_and_opens_them_under_a_script_free_policy()
    {
        var (response, html) = await GetAsync("/reports");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("<b>x</b>", html, StringComparison.Ordinal);
        var row = Assert.Single(Parser.ParseDocument(html).QuerySelectorAll("table.reports tr[data-report-id]"));
        var link = row.QuerySelector("th a")!;
        Assert.Equal(SeededInflux.HostileFinding, link.TextContent);
        Assert.Equal("reports/" + SeededInflux.ReportId, link.GetAttribute("href"));
        Assert.Equal(SeededInflux.HostileMain, row.QuerySelectorAll("td a")[0].TextContent);
        Assert.Contains("200 MiB", row.TextContent, StringComparison.Ordinal);

        using var report = await Client.GetAsync(new Uri(link.GetAttribute("href")!, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        Assert.Equal("text/html", report.Content.Headers.ContentType!.MediaType);
        Assert.StartsWith("default-src 'none'", report.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.Contains("Triage report", await report.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        foreach (var id in new[] { "..%2F..%2Fetc%2Fpasswd", "0123456789abcdef0123456789abcdeX", "ffffffffffffffffffffffffffffffff" })
        {
            using var refused = await Client.GetAsync(new Uri("reports/" + id, UriKind.Relative));
            Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        }
    }

    [Fact]
    public async Task Assets_come_from_the_assembly_and_pages_carry_a_strict_content_security_policy()
    {
        foreach (var (path, type, marker) in new[]
                 {
                     ("_apm/lib/uPlot.iife.min.js", "text/javascript", "uPlot"),
                     ("_apm/lib/uPlot.min.css", "text/css", ".uplot"),
                     ("_apm/app.js", "text/javascript", "startFleet"),
                     ("_apm/jvm.js", "text/javascript", "apmCharts"),
                     ("_apm/app.css", "text/css", "--accent"),
                 })
        {
            using var r = await Client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal(type, r.Content.Headers.ContentType!.MediaType);
            Assert.Contains(marker, await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var (page, _) = await GetAsync("/");
        var csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self';", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
    }

    [Fact]
    public async Task The_event_stream_sends_the_fleet_and_a_watched_jvms_latest_points()
    {
        var fleet = await FirstEventAsync("dashboard/events", "fleet");
        var ids = fleet.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.Equal([SeededInflux.JvmA, SeededInflux.JvmGone, SeededInflux.JvmB, SeededInflux.JvmUnreadable], ids);
        var b = fleet.GetProperty("rows").EnumerateArray().Single(r => r.GetProperty("id").GetString() == SeededInflux.JvmB);
        Assert.Equal("FinalizerBacklog", b.GetProperty("alerts").GetString());
        Assert.Equal("71 MiB / 310 MiB", b.GetProperty("cells")[0].GetString());

        // The seeded samples are minutes old by now only if the test ran slowly; the event says when the newest was.
        Assert.Equal(seed.LastSampleMs, fleet.GetProperty("newestSampleMs").GetInt64());

        var jvm = await FirstEventAsync("dashboard/events?jvm=" + Uri.EscapeDataString(SeededInflux.JvmA), "jvm");
        Assert.Equal(SeededInflux.JvmA, jvm.GetProperty("jvmId").GetString());
        var heap = jvm.GetProperty("panels").EnumerateArray().Single(p => p.GetProperty("id").GetString() == "heap");
        Assert.Equal(seed.LastSampleMs, heap.GetProperty("x").EnumerateArray().Last().GetInt64());
        Assert.Equal(seed.LastSampleMs, jvm.GetProperty("lastSampleMs").GetInt64());
    }

    [Fact]
    public async Task The_json_api_still_answers_beside_the_dashboard()
    {
        using var r = await Client.GetAsync(new Uri("api/jvms", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var list = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(4, list.GetArrayLength());
        using var alerts = await Client.GetAsync(new Uri("api/alerts?state=firing", UriKind.Relative));
        Assert.Equal(SeededInflux.JvmB, JsonDocument.Parse(await alerts.Content.ReadAsStringAsync()).RootElement[0].GetProperty("jvmId").GetString());
    }

    private async Task<JsonElement> FirstEventAsync(string path, string name)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        string? evt = null;
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) evt = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && evt == name) return JsonDocument.Parse(line[6..]).RootElement.Clone();
        }

        throw new InvalidOperationException("the stream ended without a " + name + " event");
    }

    private async Task<(HttpResponseMessage Response, string Html)> GetAsync(string path)
    {
        var response = await Client.GetAsync(new Uri(path.TrimStart('/'), UriKind.Relative));
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static List<string> Ids(string html) =>
        Parser.ParseDocument(html).QuerySelectorAll("tr[data-jvm-id]").Select(r => r.GetAttribute("data-jvm-id")!).ToList();
}
