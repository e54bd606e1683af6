using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Collector;
using Apm.FleetSimulator;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Benchmarks;

/// <summary>
/// The hour-long soak of issue 7, with every Apm service in its own process as deployed:
/// <list type="bullet">
/// <item>this process runs librdkafka's mock Kafka cluster, a real influxd, and the fleet simulator publishing a steady
/// rate through the collector's real publisher;</item>
/// <item>N <c>apm aggregator</c> processes in one consumer group (rules on, their windows set by --rule-window);</item>
/// <item>one <c>apm collector</c> process watching real fixture JVMs on this host (attach, finalizer and histogram
/// sampling included);</item>
/// <item>a real SMTP server (aiosmtpd) receiving the alert e-mails of the leaking simulated JVMs;</item>
/// <item>one <c>apm server</c> (the dashboard and API), kept busy like an open browser: a fleet event stream and a JVM
/// event stream read continuously, and the fleet page, a JVM page, the alerts page and /api/jvms fetched every 10 s.</item>
/// </list>
/// Every 30 s it reads each service's /metrics (resident memory and its anonymous part, managed heap after the last full
/// collection, consumer lag). At the end it fits a least-squares trend to the floor of each service's private memory
/// (anonymous resident pages; file-backed pages are mapped code the kernel can drop) and live heap (each 5 minutes' lowest
/// reading) after the warm-up (the first third of the run, at least the rule window plus five minutes, when the rule
/// windows fill), and prints a verdict: flat when the floor rises by less than 5 % of the service's level per hour (or 5 MB/h), or when
/// its rise is not significant (the 95 % interval of the fitted slope includes zero; the interval is printed); a falling
/// floor is said as falling; lag bounded when the median of the last five readings is under three
/// seconds of messages and no reading after the first five minutes exceeds a minute's worth (the start-up's largest
/// is printed beside it). The load starts once the aggregators' consumer group holds every partition.
/// Arguments: [--minutes N] (60) [--rate N] samples/s (500) [--jvms N] (5000) [--aggregators N] (1) [--rule-window MIN]
/// (15; the old-generation and timer-retained windows) [--interval SECONDS] (30) [--csv FILE] (every reading of every
/// metric appended to FILE) [--from-csv FILE] (no run: the verdict of a run written with --csv, from its file).
/// </summary>
public static class FleetSoak
{
    /// <summary>Runs the soak; returns 0 when every service's memory is flat and the lag bounded, else 1.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var minutes = Arg(args, "--minutes", 60);
        var rate = Arg(args, "--rate", 500);
        var jvms = Arg(args, "--jvms", 5000);
        var aggregators = Arg(args, "--aggregators", 1);
        var ruleWindow = Arg(args, "--rule-window", 15);
        var interval = Arg(args, "--interval", 30);
        var csvAt = Array.IndexOf(args, "--csv");
        var csv = csvAt >= 0 && csvAt + 1 < args.Length ? args[csvAt + 1] : null;
        var fromAt = Array.IndexOf(args, "--from-csv");
        if (fromAt >= 0 && fromAt + 1 < args.Length)
            return VerdictFromCsv(args[fromAt + 1], TimeSpan.FromMinutes(minutes), TimeSpan.FromMinutes(ruleWindow), rate);
        if (minutes < 1 || rate < 1 || jvms < 10 || aggregators is < 1 or > 6 || ruleWindow < 1 || interval < 2)
        {
            Console.Error.WriteLine("soak: --minutes >= 1, --rate >= 1, --jvms >= 10, --aggregators 1 to 6, --rule-window >= 1, --interval >= 2");
            return 2;
        }

        return RunAsync(TimeSpan.FromMinutes(minutes), rate, jvms, aggregators, TimeSpan.FromMinutes(ruleWindow), TimeSpan.FromSeconds(interval), csv)
            .GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(TimeSpan duration, int rate, int jvmCount, int aggregatorCount, TimeSpan ruleWindow, TimeSpan interval, string? csvPath)
    {
        var work = Directory.CreateTempSubdirectory("apm-soak-");
        var children = new List<ApmProcess>();
        var jvms = new List<JavaFixture>();
        // Stopped from outside (SIGTERM, Ctrl-C): take the services and JVMs down too, not only this process.
        void KillAll()
        {
            lock (children) foreach (var child in children) child.Dispose();
            foreach (var jvm in jvms) jvm.Dispose();
        }

        void AddChild(ApmProcess child)
        {
            lock (children) children.Add(child);
        }

        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, _ => KillAll());
        using var onInt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, _ => KillAll());
        try
        {
            await using var services = await BackingServices.StartAsync().ConfigureAwait(false);
            using var smtp = await SmtpServer.StartNewAsync().ConfigureAwait(false);
            var common = services.Environment();
            common["Apm__Smtp__Host"] = SmtpServer.Host;
            common["Apm__Smtp__Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture);
            common["Apm__Smtp__From"] = "apm-soak@localhost";
            common["Apm__Alerts__To"] = "oncall@localhost";
            for (var i = 0; i < aggregatorCount; i++)
            {
                AddChild(ApmProcess.Start("aggregator" + (aggregatorCount > 1 ? "-" + (i + 1) : ""), "aggregator", work, common, new()
                {
                    ["Apm__Rules__OldGenGrowth__Window"] = ruleWindow.ToString("c", CultureInfo.InvariantCulture),
                    ["Apm__Rules__TimerRetainedFinalizable__Window"] = ruleWindow.ToString("c", CultureInfo.InvariantCulture),
                    // Heap dumps would go to simulated hosts that have no collector: the soak measures steady state.
                    ["Apm__Alerts__HeapDumpRules"] = "",
                }));
            }

            // Real JVMs for the collector: an idle service, one that finalizes steadily, one whose finalizer falls behind
            // slowly. Small heaps: they run for the whole soak.
            jvms.Add(JavaFixture.Start("IdleService", ["-Xmx64m", "-XX:+UseSerialGC"]));
            jvms.Add(JavaFixture.Start("HealthyFinalizers", ["-Xmx64m", "-XX:+UseSerialGC"]));
            jvms.Add(JavaFixture.Start("IdleService", ["-Xmx96m", "-XX:+UseG1GC"]));
            foreach (var jvm in jvms) await jvm.WaitForPerfDataAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            AddChild(ApmProcess.Start("collector", "collector", work, common, new()
            {
                ["Apm__Collector__SampleInterval"] = "00:00:05",
                ["Apm__Collector__FinalizerInterval"] = "00:00:15",
                ["Apm__Collector__HistogramInterval"] = "00:02:00",
            }));
            var server = ApmProcess.Start("server", "server", work, common, new() { ["Apm__Dashboard__PollInterval"] = "00:00:02" });
            AddChild(server);
            foreach (var child in children) await child.WaitHealthyAsync(TimeSpan.FromSeconds(90)).ConfigureAwait(false);
            // The consumer group settles before the load starts: a member that joins under load makes the others give up
            // their partitions mid-stream, and the lag of that one rebalance is start-up, not steady state.
            await WaitForAssignmentAsync([.. children.Where(c => c.Role == "aggregator")], services.KafkaOptions.Partitions).ConfigureAwait(false);

            var fleet = new Fleet(jvmCount, 5, 5, 20, DateTimeOffset.UtcNow, seed: 21);
            var publisherMetrics = new CollectorMetrics();
            using var publisher = services.StartPublisher(publisherMetrics);
            Console.WriteLine(Invariant($"soak: {rate:N0} samples/s from {jvmCount:N0} simulated JVMs and {jvms.Count} real ones for {duration.TotalMinutes:0} min; {aggregatorCount} aggregator process(es), a collector, a dashboard; rule windows {ruleWindow.TotalMinutes:0} min"));
            using var stop = new CancellationTokenSource();
            var run = Task.Factory.StartNew(() => FleetRunner.Run(fleet, publisher, rate, duration, stop.Token), TaskCreationOptions.LongRunning);
            var browser = Task.Run(() => BrowseAsync(server.Http, stop.Token));

            var clock = Stopwatch.StartNew();
            var readings = new List<Reading>();
            Console.WriteLine("time      " + string.Join("  ", children.Select(c => c.Name.PadLeft(24))) + "        lag  published");
            Console.WriteLine("          " + string.Join("  ", children.Select(_ => "rss MB / live MB".PadLeft(24))));
            while (!run.IsCompleted)
            {
                await Task.WhenAny(run, Task.Delay(interval)).ConfigureAwait(false);
                if (children.FirstOrDefault(c => c.Process.HasExited) is { } dead)
                {
                    Console.Error.WriteLine($"soak: the {dead.Name} process exited with {dead.Process.ExitCode}:\n{dead.Output}");
                    await stop.CancelAsync().ConfigureAwait(false);
                    return 1;
                }

                var reading = new Reading(clock.Elapsed.TotalMinutes, [], 0, publisherMetrics.SamplesPublished);
                foreach (var child in children) reading.Services[child.Name] = await child.ReadMetricsAsync().ConfigureAwait(false);
                reading = reading with { Lag = children.Where(c => c.Role == "aggregator").Sum(c => reading.Services[c.Name].GetValueOrDefault("apm_aggregator_consumer_lag")) };
                readings.Add(reading);
                if (csvPath is not null) AppendCsv(csvPath, reading);
                Console.WriteLine(Invariant($"{clock.Elapsed:hh\\:mm\\:ss}  ") + string.Join("  ", children.Select(c =>
                    Invariant($"{Mb(reading.Services[c.Name], "apm_process_resident_memory_bytes"),8:F1} / {Mb(reading.Services[c.Name], "apm_process_managed_heap_after_full_gc_bytes"),6:F1}").PadLeft(24)))
                    + Invariant($" {reading.Lag,10:N0} {reading.Published,10:N0}"));
            }

            var published = await run.ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            var pages = await browser.ConfigureAwait(false);
            var mails = smtp.Messages;
            var kinds = mails.GroupBy(m => System.Text.RegularExpressions.Regex.Match(m.Subject, @"(FIRING|RESOLVED)\W+(\w+)") is { Success: true } k ? k.Groups[1].Value + " " + k.Groups[2].Value : "other")
                .OrderByDescending(g => g.Count()).Select(g => Invariant($"{g.Key} {g.Count():N0}"));
            Console.WriteLine(Invariant($"alert e-mails received by the SMTP server: {mails.Count:N0} ({string.Join(", ", kinds)}); {mails.Select(m => m.Subject[(m.Subject.IndexOf(" on ", StringComparison.Ordinal) + 1)..]).Distinct().Count():N0} distinct JVMs"));
            Console.WriteLine();
            Console.WriteLine(Invariant($"offered {published.SamplesPerSecond:N0} samples/s ({published.Samples:N0} samples); dashboard: {pages.Pages:N0} pages fetched, {pages.Failures:N0} failed, {pages.Events:N0} live events read"));
            var pagesOk = pages.Pages > 0 && pages.Failures == 0 && pages.Events > 0;
            return Verdict(readings, [.. children.Select(c => c.Name)], duration, ruleWindow, rate, pagesOk);
        }
        finally
        {
            KillAll();
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A child may still be closing a file; the temp folder is left behind.
            }
        }
    }

    /// <summary>
    /// Waits until the aggregators between them hold every partition, each holds some, and that has lasted three
    /// readings a second apart (a group of several members rebalances as each joins). Gives up after two minutes, said.
    /// </summary>
    private static async Task WaitForAssignmentAsync(IReadOnlyList<ApmProcess> aggregators, int partitions)
    {
        var clock = Stopwatch.StartNew();
        var steady = 0;
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            var held = new List<long>();
            foreach (var a in aggregators) held.Add((await a.ReadMetricsAsync().ConfigureAwait(false)).GetValueOrDefault("apm_aggregator_assigned_partitions"));
            steady = held.Sum() == partitions && held.All(h => h > 0) ? steady + 1 : 0;
            if (steady >= 3)
            {
                Console.WriteLine(Invariant($"consumer group settled in {clock.Elapsed.TotalSeconds:F0} s: partitions held {string.Join(" + ", held)}"));
                return;
            }

            await Task.Delay(1000).ConfigureAwait(false);
        }

        Console.WriteLine(Invariant($"consumer group did not settle in {clock.Elapsed.TotalSeconds:F0} s; the load starts anyway"));
    }

    /// <summary>
    /// The verdict of a soak written with --csv, computed again from the file (after a change to the verdict, or to look
    /// at a run that was stopped): <c>soak --from-csv FILE --minutes N --rate N --rule-window MIN</c> with the run's
    /// own settings. The dashboard's pages are not in the file, so only memory and lag are judged.
    /// </summary>
    private static int VerdictFromCsv(string path, TimeSpan duration, TimeSpan ruleWindow, int rate)
    {
        var readings = new List<Reading>();
        var services = new List<string>();
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var f = line.Split(',');
            if (f.Length != 4) continue;
            var minutes = double.Parse(f[0], CultureInfo.InvariantCulture);
            var value = long.Parse(f[3], CultureInfo.InvariantCulture);
            if (readings.Count == 0 || readings[^1].Minutes != minutes) readings.Add(new Reading(minutes, [], 0, 0));
            var r = readings[^1];
            if (f[1] == "soak")
            {
                readings[^1] = f[2] == "lag" ? r with { Lag = value } : r with { Published = value };
                continue;
            }

            if (!services.Contains(f[1])) services.Add(f[1]);
            if (!r.Services.TryGetValue(f[1], out var metrics)) r.Services[f[1]] = metrics = [];
            metrics[f[2]] = value;
        }

        Console.WriteLine(Invariant($"{readings.Count} readings of {string.Join(", ", services)} from {path}, the last at minute {readings[^1].Minutes:F1}"));
        return Verdict(readings, services, duration, ruleWindow, rate, pagesOk: true);
    }

    private static int Verdict(List<Reading> readings, IReadOnlyList<string> services, TimeSpan duration, TimeSpan ruleWindow, int rate, bool pagesOk)
    {
        var warmUp = Math.Max(duration.TotalMinutes / 3, ruleWindow.TotalMinutes + 5);
        var settled = readings.Where(r => r.Minutes >= warmUp).ToList();
        if (settled.Count < 4)
        {
            Console.WriteLine(Invariant($"too short: {settled.Count} readings after the {warmUp:F0}-minute warm-up; run longer (--minutes) for a verdict"));
            return 1;
        }

        Console.WriteLine(Invariant($"memory trend from minute {warmUp:F0} to {settled[^1].Minutes:F0} ({settled.Count} readings), least squares:"));
        var flat = true;
        foreach (var child in services)
        {
            // The process's private memory decides: anonymous resident pages (GC heap, C heap, JIT code, stacks). The
            // resident total adds file-backed pages (the runtime's and Apm's mapped code) that the kernel can drop at
            // any time and that grow as code paths run for the first time: a "where" line. A run without the
            // anonymous figure is judged on the resident total.
            var hasAnonymous = settled.Any(r => r.Services[child].ContainsKey(AnonymousMetric));
            foreach (var (metric, name, deciding) in Measured)
            {
                var decides = deciding || metric == (hasAnonymous ? AnonymousMetric : ResidentMetric);
                if (!decides && !settled.Any(r => r.Services[child].ContainsKey(metric))) continue;
                var label = name;
                var points = settled.Select(r => (r.Minutes, Mb(r.Services[child], metric))).Where(p => p.Item2 > 0).ToList();
                var note = string.Empty;
                if (label == "live heap")
                {
                    // The live heap is as of the last full collection: a reading taken before the next one repeats the
                    // last, so only readings after a new full collection count, and too few of them say nothing.
                    var fulls = settled.Select(r => r.Services[child].GetValueOrDefault("apm_process_full_gc_count")).ToList();
                    points = settled.Select((r, i) => (r, i)).Where(x => x.i == 0 || fulls[x.i] != fulls[x.i - 1])
                        .Select(x => (x.r.Minutes, Mb(x.r.Services[child], metric))).Where(p => p.Item2 > 0).ToList();
                    note = Invariant($"  ({fulls[^1] - fulls[0]:N0} full collections, {points.Count} fresh readings)");
                    if (points.Count < 4)
                    {
                        // A quiet process may go the whole window without a full collection: the heap at its last
                        // collection (live set plus garbage not yet collected) is the next best view.
                        label = "heap";
                        points = settled.Select(r => (r.Minutes, Mb(r.Services[child], "apm_process_managed_heap_bytes"))).Where(p => p.Item2 > 0).ToList();
                    }
                }

                if (points.Count < 4)
                {
                    Console.WriteLine(Invariant($"  {child,-14} {label,-10} too few readings"));
                    flat &= !decides;
                    continue;
                }

                // The trend of the floor: each 5 minutes' lowest reading. Memory saws between collections (the dashboard's
                // by 100 MB and more as pages are rendered); a leak raises the floor, garbage between collections does not.
                var floor = points.GroupBy(p => (int)(p.Minutes / 5)).Where(g => g.Count() >= 2)
                    .Select(g => (g.Key * 5 + 2.5, g.Min(p => p.Item2))).ToList();
                var fitted = floor.Count >= 3 ? floor : points;
                var (slope, margin) = SlopeWithMargin(fitted);
                var slopePerHour = slope * 60;
                var marginPerHour = margin * 60;
                var mean = points.Average(p => p.Item2);
                // Only a rising floor is a leak; a falling one (memory given back after the warm-up) is said as such.
                // A rise is a trend when it passes the limit and its 95 % interval excludes zero: floors that go up and
                // down by more than the fitted rise are noise, not growth (the interval is printed either way).
                var limit = Math.Max(5, mean * 0.05);
                // With fewer than six floors the interval says little: then the fitted rise alone decides.
                var significant = fitted.Count < 6 || slopePerHour - marginPerHour > 0;
                var ok = slopePerHour < limit || !significant;
                var word = !ok ? "GROWING" : slopePerHour <= -limit ? "falling" : slopePerHour >= limit ? "flat (rise not significant)" : "flat";
                if (decides) flat &= ok;
                else word = "(" + word + ", where)";
                Console.WriteLine(Invariant($"  {child,-14} {label,-13} mean {mean,7:F1} MB  min {points.Min(p => p.Item2),7:F1}  max {points.Max(p => p.Item2),7:F1}  floor per 5 min {string.Join(" ", floor.Select(f => f.Item2.ToString("F0", CultureInfo.InvariantCulture)))}  trend of the floor {slopePerHour,+7:+0.0;-0.0} ± {marginPerHour:F1} MB/h (limit {limit:F1})  {word}{note}"));
            }
        }

        // Lag is judged after the first five minutes (the group's first rebalances, caches filling); the largest lag
        // before that is printed beside it. Bounded: the last reading under 3 s of samples, none over a minute's.
        var startUp = readings.Where(r => r.Minutes < LagWarmUpMinutes).Select(r => r.Lag).DefaultIfEmpty().Max();
        var judged = readings.Where(r => r.Minutes >= LagWarmUpMinutes).ToList();
        var maxLag = judged.Count == 0 ? startUp : judged.Max(r => r.Lag);
        // The end: the median of the last five readings. One reading catches whatever batch is in flight (the very last
        // one is taken as the publisher stops, after its final burst); a lag that builds is high in all of them.
        var lastLags = readings.TakeLast(5).Select(r => r.Lag).Order().ToList();
        var endLag = lastLags[lastLags.Count / 2];
        var bounded = endLag <= rate * 3L && maxLag <= rate * 60L;
        Console.WriteLine(Invariant($"consumer lag: max {maxLag:N0} messages after minute {LagWarmUpMinutes} ({startUp:N0} before); at the end {endLag:N0} (median of the last {lastLags.Count} readings: {string.Join(" ", readings.TakeLast(5).Select(r => r.Lag.ToString("N0", CultureInfo.InvariantCulture)))}) (bounded: end under {rate * 3:N0}, max under {rate * 60:N0})"));
        Console.WriteLine($"verdict: memory {(flat ? "flat" : "GROWING")}, lag {(bounded ? "bounded" : "GROWING")}, dashboard {(pagesOk ? "served every page" : "FAILED pages")}");
        return flat && bounded && pagesOk ? 0 : 1;
    }

    private const int LagWarmUpMinutes = 5;

    private const string AnonymousMetric = "apm_process_resident_anonymous_bytes";
    private const string ResidentMetric = "apm_process_resident_memory_bytes";

    /// <summary>
    /// The series whose trend is fitted: the private (anonymous) resident memory and the live heap decide the verdict;
    /// the others say where a trend is (the resident total with file-backed pages, memory the GC holds, the C heap in
    /// use and freed but held).
    /// </summary>
    private static readonly (string Metric, string Name, bool Decides)[] Measured =
    [
        (AnonymousMetric, "anonymous", false),
        ("apm_process_managed_heap_after_full_gc_bytes", "live heap", true),
        (ResidentMetric, "resident", false),
        ("apm_process_gc_committed_bytes", "gc committed", false),
        ("apm_process_native_heap_in_use_bytes", "C heap used", false),
        ("apm_process_native_heap_free_bytes", "C heap free", false),
    ];

    private sealed record BrowseResult(long Pages, long Failures, long Events);

    /// <summary>What an open browser does: two event streams read continuously, four pages fetched every 10 s.</summary>
    private static async Task<BrowseResult> BrowseAsync(HttpClient http, CancellationToken ct)
    {
        long pages = 0, failures = 0, events = 0;
        string? jvmId = null;
        async Task StreamAsync(Func<string?> query)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    var q = query();
                    using var response = await http.GetAsync(new Uri("dashboard/events" + q, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false));
                    while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
                    {
                        if (line.StartsWith("event:", StringComparison.Ordinal)) Interlocked.Increment(ref events);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException)
                {
                    Interlocked.Increment(ref failures);
                    await Task.Delay(1000, CancellationToken.None).ConfigureAwait(false);
                }
            }
        }

        var fleetStream = StreamAsync(() => "");
        var jvmStream = StreamAsync(() => jvmId is null ? "" : "?jvm=" + Uri.EscapeDataString(jvmId));
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var list = await http.GetFromJsonAsync<JsonElement>(new Uri("api/jvms", UriKind.Relative), ct).ConfigureAwait(false);
                pages++;
                var ids = list.EnumerateArray().Select(j => j.GetProperty("id").GetString()!).ToList();
                if (ids.Count > 0) jvmId ??= ids[ids.Count / 2];
                foreach (var path in new[] { "/", "alerts", jvmId is null ? "reports" : "jvm?id=" + Uri.EscapeDataString(jvmId) })
                {
                    using var response = await http.GetAsync(new Uri(path.TrimStart('/'), UriKind.Relative), ct).ConfigureAwait(false);
                    _ = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode) pages++;
                    else failures++;
                }

                await Task.Delay(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException or TaskCanceledException)
            {
                failures++;
                Console.Error.WriteLine("soak: dashboard request failed: " + ex.Message);
            }
        }

        await Task.WhenAll(fleetStream, jvmStream).ConfigureAwait(false);
        return new BrowseResult(pages, failures, Interlocked.Read(ref events));
    }

    private sealed record Reading(double Minutes, Dictionary<string, Dictionary<string, long>> Services, long Lag, long Published);

    /// <summary>Every metric of every service at one reading, a line each (minute,service,metric,value): the raw data behind the verdict.</summary>
    private static void AppendCsv(string path, Reading reading)
    {
        var lines = new List<string>();
        if (!File.Exists(path)) lines.Add("minute,service,metric,value");
        foreach (var (service, metrics) in reading.Services)
        {
            foreach (var (metric, value) in metrics) lines.Add(Invariant($"{reading.Minutes:F2},{service},{metric},{value}"));
        }

        lines.Add(Invariant($"{reading.Minutes:F2},soak,lag,{reading.Lag}"));
        lines.Add(Invariant($"{reading.Minutes:F2},soak,published,{reading.Published}"));
        File.AppendAllLines(path, lines);
    }

    private static double Mb(Dictionary<string, long> metrics, string name) => metrics.GetValueOrDefault(name) / 1048576.0;

    /// <summary>The least-squares slope and the half-width of its 95 % confidence interval (Student's t, n - 2 degrees of freedom).</summary>
    private static (double Slope, double Margin) SlopeWithMargin(List<(double X, double Y)> points)
    {
        var mx = points.Average(p => p.X);
        var my = points.Average(p => p.Y);
        var num = points.Sum(p => (p.X - mx) * (p.Y - my));
        var den = points.Sum(p => (p.X - mx) * (p.X - mx));
        if (den == 0) return (0, double.PositiveInfinity);
        var slope = num / den;
        var n = points.Count;
        if (n < 3) return (slope, double.PositiveInfinity);
        var residuals = points.Sum(p => Math.Pow(p.Y - (my + slope * (p.X - mx)), 2));
        var standardError = Math.Sqrt(residuals / (n - 2) / den);
        return (slope, T975(n - 2) * standardError);
    }

    /// <summary>Student's t 97.5 % quantile for the given degrees of freedom.</summary>
    private static double T975(int df) => df switch
    {
        1 => 12.706, 2 => 4.303, 3 => 3.182, 4 => 2.776, 5 => 2.571, 6 => 2.447, 7 => 2.365, 8 => 2.306, 9 => 2.262,
        10 => 2.228, 11 => 2.201, 12 => 2.179, 13 => 2.160, 14 => 2.145, 15 => 2.131, <= 20 => 2.086, <= 30 => 2.042,
        <= 60 => 2.000, _ => 1.960,
    };

    private static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
