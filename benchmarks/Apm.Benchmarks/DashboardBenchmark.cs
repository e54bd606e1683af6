using System.Diagnostics;
using System.Globalization;
using Apm.Dashboard;
using Apm.Dashboard.Panels;
using Apm.Influx;
using Apm.Server;
using Apm.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apm.Benchmarks;

/// <summary>
/// The dashboard's server time against the raw InfluxDB queries behind it, on a real influxd: the fleet page with
/// 1,000 JVMs (30 minutes of 15-second samples each), and a JVM page showing a day of 1-second samples (downsampled
/// by InfluxDB to the chart's 800 points). The baseline is exactly what the page sent: the dashboard's InfluxDB client
/// runs over a recording handler, one page request is recorded (every request's URL, headers and body, and which ran
/// side by side), and "raw" replays those requests over HTTP in the same waves (requests that overlapped run
/// concurrently, a request that started after others ended waits for them), reading each answer to the last byte with
/// no parsing. The page time is a full HTTP GET of the rendered HTML. The fleet page's one-poll cache is bypassed
/// (every request reads InfluxDB). Arguments: [--jvms N] (default 1000) [--iterations N] (default 15) [--breakdown]
/// (also time each recorded InfluxQL statement alone).
/// </summary>
public static class DashboardBenchmark
{
    private const string DayJvm = "bench-host:1:day";

    /// <summary>Runs the benchmark and prints its figures and ratios; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var jvms = IntArg(args, "--jvms", 1000);
        var iterations = IntArg(args, "--iterations", 15);
        return RunAsync(jvms, iterations, args).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int jvmCount, int iterations, string[] args)
    {
        await using var influx = await InfluxServer.StartAsync().ConfigureAwait(false);
        var options = new InfluxOptions { Url = influx.Url, Database = "apm", Timeout = TimeSpan.FromMinutes(2) };
        using var writer = new InfluxWriter(options);
        await writer.EnsureDatabaseAsync().ConfigureAwait(false);

        var fill = Stopwatch.StartNew();
        var now = DateTimeOffset.UtcNow;
        var points = await FillFleetAsync(writer, jvmCount, now).ConfigureAwait(false);
        points += await FillDayAsync(writer, now).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"filled {points:N0} points in {fill.Elapsed.TotalSeconds:F1} s"));

        var port = FreePort.Next();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Apm:Dashboard:PollInterval"] = "00:00:00.100" });
        builder.Services.AddApmApi(builder.Configuration, options);
        // The pages' InfluxDB client, over a handler that records what they send (registered last, so it is the one used).
        using var recorder = new QueryRecorder(InfluxHandler());
        using var recorded = new HttpClient(recorder, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        builder.Services.AddSingleton(new InfluxQueryClient(options, recorded));
        builder.Services.AddApmDashboard(builder.Configuration);
        await using var app = builder.Build();
        app.UseApmApi();
        app.UseApmDashboard();
        await app.StartAsync().ConfigureAwait(false);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromMinutes(2) };
        // The baseline's client has the same handler settings as the pages' (gzip answers, pooled connections).
        using var raw = new HttpClient(InfluxHandler()) { Timeout = TimeSpan.FromMinutes(2) };
        var dashboard = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DashboardOptions>>().Value;

        // Fleet: the page vs the requests it sent (the JVM list, the columns and sparklines, the firing alerts).
        await Task.Delay(150).ConfigureAwait(false);
        var fleetRaw = await recorder.RecordAsync(() => GetAsync(http, "/")).ConfigureAwait(false);
        var fleetPage = await MeasureAsync(iterations, async () =>
        {
            await Task.Delay(150).ConfigureAwait(false); // outlive the 100 ms poll cache, outside the timing
            return await TimeAsync(() => GetAsync(http, "/")).ConfigureAwait(false);
        }).ConfigureAwait(false);
        var fleetInflux = await MeasureAsync(iterations, () => TimeAsync(() => ReplayAsync(raw, fleetRaw))).ConfigureAwait(false);
        var html = await http.GetStringAsync(new Uri("/", UriKind.Relative)).ConfigureAwait(false);
        var rows = html.Split("data-jvm-id=").Length - 1;
        if (rows < jvmCount) throw new InvalidOperationException($"the fleet page listed {rows} JVMs, expected {jvmCount}");

        // Memory: what one fleet page allocates in the server (the client reads the page into nothing), against the
        // size of the InfluxDB answers it reads. Large-object allocations are what a busy dashboard's heap grows by
        // between full collections.
        var answerBytes = await ReplayAsync(raw, fleetRaw).ConfigureAwait(false);
        var (fleetAllocated, fleetLarge, fleetLargeTypes) = await AllocationMeter.MeasureByTypeAsync(iterations, async () =>
        {
            await Task.Delay(150).ConfigureAwait(false);
            await GetAsync(http, "/").ConfigureAwait(false);
        }).ConfigureAwait(false);

        // The same for the fleet's InfluxDB reading alone (the page's answers folded into rows, no HTML).
        var fleetQueries = app.Services.GetRequiredService<FleetQueries>();
        var (readAllocated, readLarge) = await AllocationMeter.MeasureAsync(iterations, () => fleetQueries.ReadAsync(CancellationToken.None)).ConfigureAwait(false);

        // JVM page, last 24 hours: the page vs the requests it sent (its identity; then, side by side, the panels
        // downsampled by InfluxDB, the JVM's alerts, its command line and its heap-dump commands).
        var to = DateTimeOffset.UtcNow;
        var step = JvmQueries.ChooseStep(to.AddDays(-1), to, dashboard.ChartPoints);
        var path = "/jvm?range=24h&id=" + Uri.EscapeDataString(DayJvm);
        var jvmRaw = await recorder.RecordAsync(() => GetAsync(http, path)).ConfigureAwait(false);
        var jvmPage = await MeasureAsync(iterations, () => TimeAsync(() => GetAsync(http, path))).ConfigureAwait(false);
        var jvmInflux = await MeasureAsync(iterations, () => TimeAsync(() => ReplayAsync(raw, jvmRaw))).ConfigureAwait(false);
        var jvmHtml = await http.GetStringAsync(new Uri(path, UriKind.Relative)).ConfigureAwait(false);

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"fleet page, {rows} JVMs: page {fleetPage:F1} ms (median of {iterations}), raw InfluxDB queries {fleetInflux:F1} ms ({Describe(fleetRaw)}), ratio {fleetPage / fleetInflux:F2} ({html.Length / 1024} KiB HTML)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"fleet page memory: {fleetAllocated / 1048576:F1} MB allocated per page, {fleetLarge / 1048576:F1} MB of it on the large-object heap, for {answerBytes / 1048576.0:F1} MB of InfluxDB answers: ratio {fleetAllocated / answerBytes:F2} (large-object {fleetLarge / answerBytes:F2}); reading the fleet alone {readAllocated / 1048576:F1} MB ({readLarge / 1048576:F1} MB large), ratio {readAllocated / answerBytes:F2}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"JVM page, 24 h of 1 s samples (step {step?.TotalSeconds ?? 0:F0} s): page {jvmPage:F1} ms, raw InfluxDB queries {jvmInflux:F1} ms ({Describe(jvmRaw)}), ratio {jvmPage / jvmInflux:F2} ({jvmHtml.Length / 1024} KiB HTML)"));
        Console.WriteLine("  large-object bytes per fleet page by type: " + string.Join(", ", fleetLargeTypes.Take(6).Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Type} {t.Bytes / 1048576:F2} MB"))));
        if (args.Contains("--breakdown"))
        {
            // Where InfluxDB spends the raw time: each recorded statement alone (median of 5).
            foreach (var call in fleetRaw.Concat(jvmRaw))
            {
                foreach (var q in call.Statements)
                {
                    var single = call with { Body = call.WithStatement(q) };
                    var ms = await MeasureAsync(5, () => TimeAsync(() => single.SendAsync(raw))).ConfigureAwait(false);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {ms,8:F1} ms  {(q.Length > 150 ? q[..150] + "..." : q)}"));
                }
            }
        }

        await app.StopAsync().ConfigureAwait(false);
        return 0;
    }

    private static async Task<long> FillFleetAsync(InfluxWriter writer, int jvms, DateTimeOffset now)
    {
        long n = 0;
        var lines = new LineProtocolBuilder(1 << 20);
        for (var j = 0; j < jvms; j++)
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"host-{j / 20}:{1000 + j}:1");
            var host = string.Create(CultureInfo.InvariantCulture, $"host-{j / 20}");
            for (var s = 0; s < 120; s++)
            {
                n += Sample(lines, id, host, now.AddSeconds(-15 * (120 - s)), s, (j * 7) + s);
            }

            if (lines.PointCount > 50_000)
            {
                await writer.WriteAsync(lines).ConfigureAwait(false);
                lines.Clear();
            }
        }

        await writer.WriteAsync(lines).ConfigureAwait(false);
        return n;
    }

    private static async Task<long> FillDayAsync(InfluxWriter writer, DateTimeOffset now)
    {
        long n = 0;
        var lines = new LineProtocolBuilder(1 << 20);
        for (var s = 0; s < 86_400; s++)
        {
            n += Sample(lines, DayJvm, "bench-host", now.AddSeconds(-86_400 + s), s, s);
            if (lines.PointCount > 50_000)
            {
                await writer.WriteAsync(lines).ConfigureAwait(false);
                lines.Clear();
            }
        }

        await writer.WriteAsync(lines).ConfigureAwait(false);
        return n;
    }

    /// <summary>One sample's points, shaped like the aggregator's (see src/Apm.Aggregator/SamplePoints.cs).</summary>
    private static int Sample(LineProtocolBuilder l, string id, string host, DateTimeOffset t, int s, int seed)
    {
        l.Measurement("apm.jvm.info").Tag("host", host).Tag("jvm_id", id).Field("status", "live").Field("pid", 1L).Field("main_class", "com.example.Service")
            .Field("jvm_version", "17.0.15").Field("jvm_vendor", "Debian").Field("gc", "G1 Young Generation, G1 Old Generation").Timestamp(t);
        var n = 1;
        foreach (var (pool, used, max) in new[] { ("eden", (20L << 20) + (seed % 7 * 1024L), 100L << 20), ("survivor-0", 1L << 20, 10L << 20), ("old", (50L << 20) + (seed * 1024L % (50L << 20)), 400L << 20) })
        {
            l.Measurement("jvm.memory.used").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", used).Timestamp(t);
            l.Measurement("jvm.memory.committed").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", max / 2).Timestamp(t);
            l.Measurement("jvm.memory.limit").Tag("host", host).Tag("jvm_id", id).Tag("pool", pool).Tag("type", "heap").Field("value", max).Timestamp(t);
            n += 3;
        }

        l.Measurement("jvm.memory.used_after_last_gc").Tag("host", host).Tag("jvm_id", id).Tag("pool", "old").Tag("type", "heap").Field("value", 45L << 20).Timestamp(t);
        l.Measurement("jvm.gc.collections").Tag("collector", "G1 Young Generation").Tag("host", host).Tag("jvm_id", id).Field("value", (long)s / 10).Timestamp(t);
        l.Measurement("jvm.gc.time").Tag("collector", "G1 Young Generation").Tag("host", host).Tag("jvm_id", id).Field("value", s * 0.0005).Timestamp(t);
        l.Measurement("jvm.gc.overhead").Tag("host", host).Tag("jvm_id", id).Field("value", 0.0005).Timestamp(t);
        l.Measurement("jvm.thread.count").Tag("host", host).Tag("jvm_id", id).Field("value", 40L).Timestamp(t);
        l.Measurement("jvm.thread.daemon.count").Tag("host", host).Tag("jvm_id", id).Field("value", 30L).Timestamp(t);
        l.Measurement("jvm.safepoint.count").Tag("host", host).Tag("jvm_id", id).Field("value", (long)s).Timestamp(t);
        l.Measurement("jvm.safepoint.time").Tag("host", host).Tag("jvm_id", id).Field("value", s * 0.0001).Timestamp(t);
        n += 8;
        if (s % 15 == 0)
        {
            l.Measurement("jvm.finalizer.pending").Tag("host", host).Tag("jvm_id", id).Field("value", (long)(seed % 50)).Timestamp(t);
            n++;
        }

        if (s % 600 == 0)
        {
            l.Measurement("jvm.finalizer.registered").Tag("host", host).Tag("jvm_id", id).Field("value", 1000L + s).Timestamp(t);
            n++;
        }

        return n;
    }

    private static async Task GetAsync(HttpClient http, string path)
    {
        // Headers only: the default (the whole content read into one buffer) put megabytes of the client's own arrays
        // into the server's allocation figures, which measure this whole process.
        using var r = await http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        r.EnsureSuccessStatusCode();
        var body = await r.Content.ReadAsStreamAsync().ConfigureAwait(false);
        await using (body.ConfigureAwait(false)) await body.CopyToAsync(Stream.Null).ConfigureAwait(false); // read to the end, keep nothing
    }

    /// <summary>The same handler settings as the InfluxDB client's own (see Apm.Influx's InfluxHttp).</summary>
    private static SocketsHttpHandler InfluxHandler() => new() { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AutomaticDecompression = System.Net.DecompressionMethods.GZip };

    /// <summary>"4 requests in 2 waves".</summary>
    private static string Describe(IReadOnlyList<RecordedQuery> calls) =>
        string.Create(CultureInfo.InvariantCulture, $"{calls.Count} requests in {Waves(calls).Count} waves");

    /// <summary>
    /// The recorded requests grouped as they ran: in start order, a request joins the current wave when it started
    /// before every request of that wave had ended, else it opens the next wave.
    /// </summary>
    private static List<List<RecordedQuery>> Waves(IReadOnlyList<RecordedQuery> calls)
    {
        var waves = new List<List<RecordedQuery>>();
        long end = long.MinValue;
        foreach (var c in calls.OrderBy(c => c.Started))
        {
            if (waves.Count == 0 || c.Started >= end)
            {
                waves.Add([]);
                end = c.Ended;
            }
            else
            {
                end = Math.Max(end, c.Ended);
            }

            waves[^1].Add(c);
        }

        return waves;
    }

    /// <summary>Sends the recorded requests again, wave after wave, each wave's requests side by side, read to the end.</summary>
    /// <summary>Sends the recorded requests in their waves; returns the bytes of the answers (decompressed).</summary>
    private static async Task<long> ReplayAsync(HttpClient raw, IReadOnlyList<RecordedQuery> calls)
    {
        long bytes = 0;
        foreach (var wave in Waves(calls)) bytes += (await Task.WhenAll(wave.Select(c => c.SendAsync(raw))).ConfigureAwait(false)).Sum();
        return bytes;
    }

    /// <summary>One InfluxDB request a page sent: where, with which headers and body, and when (Stopwatch ticks).</summary>
    private sealed record RecordedQuery(HttpMethod Method, Uri Uri, IReadOnlyList<KeyValuePair<string, string[]>> Headers, string? ContentType, string Body, long Started, long Ended)
    {
        /// <summary>The InfluxQL statements of the body's q parameter.</summary>
        public IEnumerable<string> Statements =>
            Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(Body)["q"].ToString().Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        /// <summary>The body with q replaced by one statement.</summary>
        public string WithStatement(string statement) => "q=" + Uri.EscapeDataString(statement);

        public async Task<long> SendAsync(HttpClient client)
        {
            using var request = new HttpRequestMessage(Method, Uri);
            foreach (var (k, v) in Headers) request.Headers.TryAddWithoutValidation(k, v);
            if (ContentType is not null)
            {
                // The exact bytes and content type the page sent (a form-encoded body is ASCII).
                request.Content = new ByteArrayContent(System.Text.Encoding.ASCII.GetBytes(Body));
                request.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }

            using var r = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            r.EnsureSuccessStatusCode();
            return (await r.Content.ReadAsByteArrayAsync().ConfigureAwait(false)).LongLength;
        }
    }

    /// <summary>Records the requests sent through it while <see cref="RecordAsync"/> runs.</summary>
    private sealed class QueryRecorder(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        private readonly List<RecordedQuery> _calls = [];
        private volatile bool _recording;

        /// <summary>Runs <paramref name="action"/> and returns the InfluxDB requests it caused (at least one, or it throws).</summary>
        public async Task<IReadOnlyList<RecordedQuery>> RecordAsync(Func<Task> action)
        {
            lock (_calls) _calls.Clear();
            _recording = true;
            try
            {
                await action().ConfigureAwait(false);
            }
            finally
            {
                _recording = false;
            }

            lock (_calls)
            {
                if (_calls.Count == 0) throw new InvalidOperationException("the page sent no InfluxDB request while it was recorded");
                return _calls.ToList();
            }
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!_recording) return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var body = request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            var headers = request.Headers.Select(h => new KeyValuePair<string, string[]>(h.Key, h.Value.ToArray())).ToList();
            var started = Stopwatch.GetTimestamp();
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            // The page reads the whole answer before it goes on: so does the recorded request's end.
            await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
            var call = new RecordedQuery(request.Method, request.RequestUri!, headers, request.Content?.Headers.ContentType?.ToString(), body, started, Stopwatch.GetTimestamp());
            lock (_calls) _calls.Add(call);
            return response;
        }
    }

    private static async Task<double> TimeAsync(Func<Task> action)
    {
        var sw = Stopwatch.StartNew();
        await action().ConfigureAwait(false);
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>Median of <paramref name="iterations"/> runs after two warm-up runs.</summary>
    private static async Task<double> MeasureAsync(int iterations, Func<Task<double>> run)
    {
        for (var i = 0; i < 2; i++) await run().ConfigureAwait(false);
        var times = new List<double>(iterations);
        for (var i = 0; i < iterations; i++) times.Add(await run().ConfigureAwait(false));
        times.Sort();
        return times[times.Count / 2];
    }

    private static int IntArg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
    }
}
