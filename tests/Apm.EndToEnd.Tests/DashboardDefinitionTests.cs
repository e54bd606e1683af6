using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Apm.Aggregator;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// The Grafana dashboards in dashboards/grafana query only what the aggregator writes: every measurement, every field a
/// query selects, every tag it filters or groups by, checked against the points the aggregator's own writers produce
/// (<see cref="SamplePoints"/> for every collector message kind, <see cref="AlertOutputs"/> for alerts).
/// </summary>
public sealed partial class DashboardDefinitionTests
{
    [Theory]
    [InlineData("apm-jvm.json", 12)]
    [InlineData("apm-fleet.json", 10)]
    public void Every_grafana_query_names_measurements_fields_and_tags_the_aggregator_writes(string file, int panels)
    {
        var schema = WrittenSchema();
        using var doc = Dashboard(file);
        var list = doc.RootElement.GetProperty("panels").EnumerateArray().ToList();
        Assert.Equal(panels, list.Count);
        Assert.Equal(list.Count, list.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
        foreach (var panel in list)
        {
            var targets = panel.GetProperty("targets").EnumerateArray().ToList();
            Assert.True(targets.Count > 0, "panel without a query: " + panel.GetProperty("title").GetString());
            foreach (var t in targets) Check(t.GetProperty("query").GetString()!, schema);
        }

        foreach (var variable in doc.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray().Where(v => v.GetProperty("type").GetString() == "query"))
        {
            var m = ShowTagValues().Match(variable.GetProperty("query").GetString()!);
            Assert.True(m.Success, "unexpected variable query " + variable.GetProperty("query").GetString());
            Assert.Contains(m.Groups["key"].Value, schema[m.Groups["m"].Value].Tags);
        }
    }

    [Fact]
    public void The_jvm_dashboard_charts_the_old_generation_after_gc_and_the_fleet_dashboard_reads_what_the_fleet_page_reads()
    {
        using var jvm = Dashboard("apm-jvm.json");
        Assert.Contains(jvm.RootElement.GetProperty("panels").EnumerateArray(), p => p.GetProperty("title").GetString()!.StartsWith("Old generation after GC", StringComparison.Ordinal)
            && Queries(p).Any(q => q.Contains("FROM \"jvm.memory.used_after_last_gc\"", StringComparison.Ordinal)));

        // The fleet: heap used and max, old generation after GC, GC overhead, pending finalizers, firing alerts, over the
        // measurements Apm's own fleet page reads (its panel file, the JVM list and the alerts).
        using var fleet = Dashboard("apm-fleet.json");
        var measurements = fleet.RootElement.GetProperty("panels").EnumerateArray().SelectMany(Queries)
            .SelectMany(q => Select().Matches(q).Select(m => m.Groups["m"].Value)).ToHashSet(StringComparer.Ordinal);
        Assert.Superset(new HashSet<string>(["jvm.memory.used", "jvm.memory.limit", "jvm.memory.used_after_last_gc", "jvm.gc.overhead", "jvm.finalizer.pending", "apm.alert"]), measurements);
        using var page = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "dashboards", "panels", "fleet.json")));
        var pageReads = page.RootElement.GetProperty("columns").EnumerateArray()
            .SelectMany(c => c.TryGetProperty("max", out var max) ? new[] { c.GetProperty("metric").GetString()!, max.GetProperty("metric").GetString()! } : new[] { c.GetProperty("metric").GetString()! })
            .Append(SamplePoints.InfoMeasurement).Append(Apm.Alerts.AlertSchema.Measurement).ToHashSet(StringComparer.Ordinal);
        Assert.Subset(pageReads, measurements);
    }

    [Theory]
    [InlineData("SELECT mean(\"value\") FROM \"jvm.memory.usd\" WHERE $timeFilter", "measurement")]
    [InlineData("SELECT mean(\"val\") FROM \"jvm.memory.used\" WHERE $timeFilter", "field")]
    [InlineData("SELECT mean(\"value\") FROM \"jvm.memory.used\" WHERE \"region\" = 'old' AND $timeFilter", "tag or field")]
    [InlineData("SELECT mean(\"value\") FROM \"jvm.gc.overhead\" WHERE $timeFilter GROUP BY time($__interval), \"pool\" fill(none)", "tag")]
    [InlineData("SELECT count(\"state\") FROM (SELECT last(\"status\") AS \"state\" FROM \"apm.alert\" WHERE time > now() - 1d GROUP BY \"alert_id\")", "field")]
    [InlineData("SHOW MEASUREMENTS", "no SELECT")]
    public void A_query_naming_what_the_aggregator_does_not_write_is_caught(string query, string what)
    {
        var ex = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => Check(query, WrittenSchema()));
        Assert.Contains(what, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Each innermost SELECT's measurement, selected fields, filtered names and grouping tags must exist.</summary>
    private static void Check(string query, IReadOnlyDictionary<string, (HashSet<string> Tags, HashSet<string> Fields)> schema)
    {
        var selects = Select().Matches(query);
        Assert.True(selects.Count > 0, "no SELECT ... FROM \"measurement\" in " + query);
        foreach (Match s in selects)
        {
            var measurement = s.Groups["m"].Value;
            Assert.True(schema.TryGetValue(measurement, out var written), $"the aggregator writes no measurement \"{measurement}\": {query}");
            foreach (Match name in Identifier().Matches(s.Groups["select"].Value))
            {
                if (name.Groups["alias"].Success) continue;
                Assert.True(written.Fields.Contains(name.Groups["name"].Value), $"\"{measurement}\" has no field \"{name.Groups["name"].Value}\": {query}");
            }

            var rest = s.Groups["rest"].Value;
            var group = rest.IndexOf(" GROUP BY ", StringComparison.Ordinal);
            var where = group < 0 ? rest : rest[..group];
            foreach (Match name in Identifier().Matches(where))
            {
                var n = name.Groups["name"].Value;
                Assert.True(written.Tags.Contains(n) || written.Fields.Contains(n), $"\"{measurement}\" has no tag or field \"{n}\": {query}");
            }

            if (group < 0) continue;
            foreach (Match name in Identifier().Matches(rest[group..]))
            {
                Assert.True(written.Tags.Contains(name.Groups["name"].Value), $"\"{measurement}\" has no tag \"{name.Groups["name"].Value}\" to group by: {query}");
            }
        }
    }

    /// <summary>Measurement → tag and field names, from the aggregator's writers fed one of every message it stores.</summary>
    private static Dictionary<string, (HashSet<string> Tags, HashSet<string> Fields)> WrittenSchema()
    {
        var jvm = new JvmIdentity
        {
            JvmId = "host-1:42:1700000000000", Host = "host-1", Pid = 42, NsPid = 42, StartTimeUnixMs = 1_700_000_000_000, MainClass = "com.example.Service",
            JavaCommand = "com.example.Service --port 8080", JvmVersion = "17.0.15", JvmVendor = "Debian", JvmName = "OpenJDK 64-Bit Server VM",
        };
        const long T = 1_700_000_100_000_000_000;
        JvmSample Sample(long t, long gcs) => new()
        {
            Jvm = jvm, Sequence = (ulong)gcs, TimeUnixNanos = t, UptimeSeconds = 100 + gcs,
            Spaces =
            {
                new MemorySpace { Pool = "eden", Type = "heap", UsedBytes = 10, CommittedBytes = 20, MaxBytes = 40 },
                new MemorySpace { Pool = "old", Type = "heap", UsedBytes = 30, CommittedBytes = 40, MaxBytes = 80 },
                new MemorySpace { Pool = "metaspace", Type = "non_heap", UsedBytes = 5, CommittedBytes = 6, MaxBytes = 0 },
            },
            Collectors =
            {
                new Protocol.V1.Collector { Index = 0, Name = "Copy", Invocations = gcs, TimeSeconds = gcs * 0.01, LastEntrySeconds = 99, LastExitSeconds = 99.5 },
                new Protocol.V1.Collector { Index = 1, Name = "MarkSweepCompact", Invocations = gcs / 2, TimeSeconds = gcs * 0.02, LastEntrySeconds = 99, LastExitSeconds = 99.5 },
            },
            LastGcCause = "Allocation Failure", Safepoints = gcs * 3, SafepointTimeSeconds = gcs * 0.001, LiveThreads = 12, DaemonThreads = 8, PeakThreads = 14,
            LoadedClasses = 4000, UnloadedClasses = 3,
        };

        var lines = new LineProtocolBuilder();
        var previous = Sample(T - 2_000_000_000, 10);
        SamplePoints.Append(lines, new CollectorMessage { Sample = previous }, null);
        SamplePoints.Append(lines, new CollectorMessage { Sample = Sample(T, 12) }, previous);
        SamplePoints.Append(lines, new CollectorMessage { Status = new JvmStatus { Jvm = jvm, State = JvmStatus.Types.State.Unreadable, Reason = "bad file", TimeUnixNanos = T } }, null);
        SamplePoints.Append(lines, new CollectorMessage
        {
            Finalizer = new FinalizerSample { Jvm = jvm, TimeUnixNanos = T, PendingTotal = 7, Classes = { new FinalizerClassCount { ClassName = "com.example.Stmt", Count = 7 } } },
        }, null);
        SamplePoints.Append(lines, new CollectorMessage
        {
            Histogram = new ClassHistogramSample
            {
                Jvm = jvm, TimeUnixNanos = T, TotalInstances = 100, TotalBytes = 1000, FinalizerRegistered = 9,
                Rows = { new HistogramRow { ClassName = "com.example.Stmt", Instances = 9, Bytes = 90, Module = "", KeptBecause = "finalizer" } },
            },
        }, null);
        SamplePoints.Append(lines, new CollectorMessage { AttachStatus = new AttachStatus { Jvm = jvm, TimeUnixNanos = T, Ok = false, Failure = "Timeout", Reason = "r", Command = "GC.finalizer_info" } }, null);
        SamplePoints.Append(lines, new CollectorMessage { CommandResult = new CommandResult { CommandId = "c", Jvm = jvm, TimeUnixNanos = T, State = CommandResult.Types.State.Done, ReportId = "r" } }, null);
        var started = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        AlertOutputs.AppendPoint(lines, new AlertEvent(jvm.JvmId + "|FinalizerBacklog|1", jvm.JvmId, "FinalizerBacklog", AlertState.Firing, started, started.AddMinutes(5), null,
            "The queue grew", new Dictionary<string, string> { ["pending"] = "7" }), jvm);
        return ParseLineProtocol(lines.ToString());
    }

    /// <summary>Names only: measurement, tag keys and field keys of each line (escapes and quoted strings respected).</summary>
    private static Dictionary<string, (HashSet<string> Tags, HashSet<string> Fields)> ParseLineProtocol(string text)
    {
        var schema = new Dictionary<string, (HashSet<string> Tags, HashSet<string> Fields)>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = SplitUnescaped(line, ' ');
            var series = SplitUnescaped(parts[0], ',');
            var measurement = Unescape(series[0]);
            if (!schema.TryGetValue(measurement, out var names)) schema[measurement] = names = (new HashSet<string>(StringComparer.Ordinal), new HashSet<string>(StringComparer.Ordinal));
            foreach (var tag in series.Skip(1)) names.Tags.Add(Unescape(SplitUnescaped(tag, '=')[0]));
            foreach (var field in SplitUnescaped(parts[1], ',')) names.Fields.Add(Unescape(SplitUnescaped(field, '=')[0]));
        }

        return schema;
    }

    /// <summary>Splits at <paramref name="separator"/> outside backslash escapes and double-quoted strings.</summary>
    private static List<string> SplitUnescaped(string s, char separator)
    {
        var parts = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '\\' && i + 1 < s.Length)
            {
                current.Append(c).Append(s[++i]);
                continue;
            }

            if (c == '"') quoted = !quoted;
            if (c == separator && !quoted)
            {
                parts.Add(current.ToString());
                current.Clear();
                continue;
            }

            current.Append(c);
        }

        parts.Add(current.ToString());
        return parts;
    }

    private static string Unescape(string s) => Regex.Replace(s, @"\\(.)", "$1");

    private static IEnumerable<string> Queries(JsonElement panel) => panel.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("query").GetString()!);

    private static JsonDocument Dashboard(string file) => JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "dashboards", "grafana", file)));

    internal static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Apm.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Apm.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>An innermost SELECT over a measurement: its select list, the measurement, and what follows up to a closing parenthesis (one level of nested parentheses, as in time(...) and fill(...)).</summary>
    [GeneratedRegex("""SELECT (?<select>(?:(?!SELECT ).)+?) FROM "(?<m>[^"]+)"(?<rest>(?:[^()]|\([^()]*\))*)""")]
    private static partial Regex Select();

    /// <summary>A double-quoted identifier, marked as an alias when it follows AS.</summary>
    [GeneratedRegex("(?<alias>AS )?\"(?<name>[^\"]+)\"")]
    private static partial Regex Identifier();

    [GeneratedRegex("""^SHOW TAG VALUES FROM "(?<m>[^"]+)" WITH KEY = "(?<key>[^"]+)"$""")]
    private static partial Regex ShowTagValues();
}
