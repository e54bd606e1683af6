using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Collector;
using Apm.Collector.Commands;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Testing;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// The leak rules end to end: real fixture JVMs → the collector (perf counters and the attach client) → Kafka → an
/// `apm aggregator` process configured only through environment variables → alert e-mails at a real SMTP server
/// (aiosmtpd), alerts in InfluxDB behind /api/alerts, and transitions on the alerts topic.
/// </summary>
public sealed class AlertMailTests(ITestOutputHelper output)
{
    private const string StatementClass = "CancelTimerLeak$CancelTimerLeakStatement";
    private const string TaskClass = "CancelTimerLeak$CancelTimerLeakStatement$1";

    [Fact]
    public async Task The_CancelTimer_JVM_and_the_slow_finalizer_each_raise_their_alert_by_mail_the_healthy_one_nothing_and_stopping_growth_resolves()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var smtp = await SmtpServer.StartNewAsync();
        smtp.Stop(); // the mail server is down when the alerts fire: they must wait in the outbox, not be lost
        var outbox = Directory.CreateTempSubdirectory("apm-outbox-");
        var reports = Directory.CreateTempSubdirectory("apm-reports-");
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        var apiPort = FreePort.Next();
        using var aggregator = StartAggregatorProcess(pipeline, smtp.Port, apiPort, outbox.FullName, reports.FullName);
        using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}") };

        // The three patterns of the issue, side by side on one host.
        using var leak = JavaFixture.Start("CancelTimerLeak", ["-Xmx256m", "-XX:+UseSerialGC"], ["2000", "64", "300"]);
        using var slow = JavaFixture.Start("SlowFinalizer", ["-Xmx256m", "-XX:+UseSerialGC"]);
        // A healthy service that keeps creating and dropping finalizable objects (2,000 a second), finalized promptly.
        using var healthy = JavaFixture.Start("HealthyService", ["-Xmx256m", "-XX:+UseSerialGC"]);
        foreach (var jvm in new[] { leak, slow, healthy }) await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));

        var metrics = new CollectorMetrics();
        using var collector = new CollectorService(
            Options.Create(new CollectorOptions
            {
                SampleInterval = TimeSpan.FromSeconds(1),
                FinalizerInterval = TimeSpan.FromSeconds(1),
                HistogramInterval = TimeSpan.FromSeconds(3),
                HostName = "e2e-alerts",
                HeapDump = new HeapDumpOptions { Directory = dumps.FullName, TriageMemoryLimitBytes = 1L << 30, MinFreeBytes = 64L << 20 },
            }),
            Options.Create(pipeline.KafkaOptions), metrics, NullLogger<CollectorService>.Instance);
        await collector.StartAsync(CancellationToken.None);
        try
        {
            var leakId = await JvmIdAsync(pipeline, leak.Pid);
            var slowId = await JvmIdAsync(pipeline, slow.Pid);
            var healthyId = await JvmIdAsync(pipeline, healthy.Pid);

            // The API lists both as firing, with evidence, for the right JVMs.
            JsonElement firing = default;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                firing = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=firing");
                return firing.EnumerateArray().Any(a => a.GetProperty("rule").GetString() == "TimerRetainedFinalizable" && a.GetProperty("jvmId").GetString() == leakId)
                    && firing.EnumerateArray().Any(a => a.GetProperty("rule").GetString() == "FinalizerBacklog" && a.GetProperty("jvmId").GetString() == slowId);
            }, TimeSpan.FromSeconds(120)), $"firing alerts: {firing}\naggregator:\n{aggregator.Output}");
            var timerAlert = firing.EnumerateArray().Single(a => a.GetProperty("rule").GetString() == "TimerRetainedFinalizable" && a.GetProperty("jvmId").GetString() == leakId);
            Assert.Equal(StatementClass, timerAlert.GetProperty("evidence").GetProperty("finalizableClass").GetString());
            Assert.Equal(TaskClass, timerAlert.GetProperty("evidence").GetProperty("timerTaskClass").GetString());
            Assert.True(timerAlert.TryGetProperty("firedAt", out var firedAt) && firedAt.ValueKind == JsonValueKind.String);
            // The rule's suggested fixes are stored with the alert and listed by the API.
            var apiFixes = timerAlert.GetProperty("suggestedFixes").EnumerateArray().Select(f => f.GetString()!).ToList();
            Assert.Equal(3, apiFixes.Count);
            Assert.Contains(apiFixes, f => f.Contains("Upgrade the JDBC driver", StringComparison.Ordinal));
            Assert.Contains(apiFixes, f => f.Contains("shorter query timeout", StringComparison.Ordinal));
            Assert.Contains(apiFixes, f => f.Contains("Timer.purge()", StringComparison.Ordinal));
            var backlogAlert = firing.EnumerateArray().Single(a => a.GetProperty("rule").GetString() == "FinalizerBacklog" && a.GetProperty("jvmId").GetString() == slowId);
            var backlogId = backlogAlert.GetProperty("id").GetString()!;
            Assert.Contains("SlowFinalizerResource", backlogAlert.GetProperty("evidence").GetProperty("topClasses").GetString(), StringComparison.Ordinal);

            // While the mail server is down the firing mails wait in the outbox; then it comes up and they are delivered.
            Assert.Empty(smtp.Messages);
            Assert.True(Directory.EnumerateFiles(outbox.FullName, "*.json").Count() >= 2, "the outbox does not hold the two firing mails");
            await smtp.StartAsync();

            // Firing mails for both patterns, naming the right classes.
            ReceivedMail? timerMail = null, backlogMail = null;
            var fired = await Pipeline.EventuallyAsync(() =>
            {
                // The collector watches every JVM on the host (other tests' too): match the mails by the fixture's pid.
                timerMail = MailAbout(smtp, "FIRING TimerRetainedFinalizable", leak.Pid);
                backlogMail = MailAbout(smtp, "FIRING FinalizerBacklog", slow.Pid);
                return Task.FromResult(timerMail != null && backlogMail != null);
            }, TimeSpan.FromSeconds(30));
            Assert.True(fired, $"mails so far: [{string.Join(" | ", smtp.Messages.Select(m => m.Subject))}]\naggregator:\n{aggregator.Output}");

            var timerText = timerMail!.Part("text/plain")!;
            Assert.Contains("CancelTimerLeak", timerMail.Subject, StringComparison.Ordinal);
            Assert.Contains(StatementClass, timerText, StringComparison.Ordinal);
            Assert.Contains(TaskClass, timerText, StringComparison.Ordinal);
            Assert.Contains("cancelled timer tasks stay in the timer's queue", timerText, StringComparison.Ordinal);
            Assert.Contains("/jvm?id=" + Uri.EscapeDataString(leakId), timerText, StringComparison.Ordinal);
            var timerHtml = timerMail.Part("text/html")!;
            Assert.Contains(StatementClass, timerHtml, StringComparison.Ordinal);
            // Both parts carry the suggested fixes: driver upgrade, shorter query timeout, Timer.purge().
            Assert.Contains("Suggested fixes:", timerText, StringComparison.Ordinal);
            Assert.Contains("<h3>Suggested fixes</h3>", timerHtml, StringComparison.Ordinal);
            Assert.All(apiFixes, f =>
            {
                Assert.Contains(f, timerText, StringComparison.Ordinal);
                Assert.Contains(System.Net.WebUtility.HtmlEncode(f), timerHtml, StringComparison.Ordinal);
            });

            var backlogText = backlogMail!.Part("text/plain")!;
            Assert.Contains("SlowFinalizer", backlogMail.Subject, StringComparison.Ordinal);
            Assert.Contains("SlowFinalizerResource", backlogText, StringComparison.Ordinal);
            Assert.Contains("/jvm?id=" + Uri.EscapeDataString(slowId), backlogText, StringComparison.Ordinal);

            // Stop the slow fixture's growth: the queue drains, the alert resolves, the resolved mail follows.
            slow.Send("stop-growth");
            await slow.WaitForOutputAsync("GROWTH-STOPPED", TimeSpan.FromSeconds(10));
            ReceivedMail? resolvedMail = null;
            Assert.True(await Pipeline.EventuallyAsync(() =>
            {
                resolvedMail = MailAbout(smtp, "RESOLVED FinalizerBacklog", slow.Pid);
                return Task.FromResult(resolvedMail != null);
            }, TimeSpan.FromSeconds(120)), $"no resolved mail; mails: [{string.Join(" | ", smtp.Messages.Select(m => m.Subject))}]\naggregator:\n{aggregator.Output}");
            Assert.Contains("SlowFinalizer", resolvedMail!.Subject, StringComparison.Ordinal);
            Assert.Contains(backlogId, resolvedMail.Part("text/plain")!, StringComparison.Ordinal);
            JsonElement resolved = default;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                resolved = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=resolved");
                return resolved.EnumerateArray().Any(a => a.GetProperty("id").GetString() == backlogId);
            }, TimeSpan.FromSeconds(10)), "resolved alerts: " + resolved);
            var resolvedAlert = resolved.EnumerateArray().Single(a => a.GetProperty("id").GetString() == backlogId);
            Assert.Equal("resolved", resolvedAlert.GetProperty("state").GetString());
            Assert.True(resolvedAlert.GetProperty("resolvedAt").GetDateTimeOffset() > resolvedAlert.GetProperty("firedAt").GetDateTimeOffset());

            // The healthy JVM raised nothing in the same time (not even pending), and no mail is about it.
            var healthyAlerts = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all&jvm=" + Uri.EscapeDataString(healthyId));
            Assert.True(healthyAlerts.GetArrayLength() == 0, "the healthy JVM raised: " + healthyAlerts);
            Assert.DoesNotContain(smtp.Messages, m => m.Subject.Contains($"(pid {healthy.Pid} ", StringComparison.Ordinal));
            // De-duplicated: one firing mail per alert, however many evaluations stayed breached.
            Assert.Single(smtp.Messages, m => m.Subject.Contains("FIRING TimerRetainedFinalizable", StringComparison.Ordinal) && m.Subject.Contains($"(pid {leak.Pid} ", StringComparison.Ordinal));
            Assert.Single(smtp.Messages, m => m.Subject.Contains("FIRING FinalizerBacklog", StringComparison.Ordinal) && m.Subject.Contains($"(pid {slow.Pid} ", StringComparison.Ordinal));

            // The alerts topic carries the same transitions.
            var transitions = ReadAlertTopic(pipeline.KafkaOptions);
            Assert.Contains(transitions, t => t.AlertId == backlogId && t.State == "firing");
            Assert.Contains(transitions, t => t.AlertId == backlogId && t.State == "resolved" && t.ResolvedUnixMs > 0);
            Assert.Contains(transitions, t => t.Rule == "TimerRetainedFinalizable" && t.Jvm.JvmId == leakId && t.Evidence["timerTaskClass"] == TaskClass
                && t.State == "firing" && t.SuggestedFixes.SequenceEqual(apiFixes));

            // The loop closed: the timer alert asked the collector for a heap dump, the collector triaged it, the report came
            // back over Kafka, the aggregator stored it, the API lists it and links the alert to it, and a follow-up mail
            // names the statement and task classes.
            ReceivedMail? reportMail = null;
            Assert.True(await Pipeline.EventuallyAsync(() =>
            {
                reportMail = smtp.Messages.FirstOrDefault(m => m.Subject.Contains("Report ready", StringComparison.Ordinal) && m.Part("text/plain")!.Contains(leakId, StringComparison.Ordinal));
                return Task.FromResult(reportMail != null);
            }, TimeSpan.FromSeconds(120)), $"no report-ready mail; mails: [{string.Join(" | ", smtp.Messages.Select(m => m.Subject))}]\n" +
                $"dump outcomes: {string.Join(", ", collector.HeapDumps?.Outcomes.Select(o => o.Key + "=" + o.Value) ?? [])}; commands ready: {collector.CommandsReady}\n" +
                $"command results: {string.Join(" | ", (await pipeline.Query.QueryAsync("SELECT * FROM \"apm.command\"")).Series.SelectMany(x => x.Values).Select(v => string.Join(",", v.Select(c => c.ToString()))))}\n" +
                $"commands on the topic: {string.Join(" | ", ReadTopic(pipeline.KafkaOptions, ApmTopics.Commands).Select(v => CollectorCommand.Parser.ParseFrom(v).ToString()))}\n" +
                $"aggregator:\n{aggregator.Output}");
            var reportText = reportMail!.Part("text/plain")!;
            Assert.Contains(StatementClass, reportText, StringComparison.Ordinal);
            Assert.Contains(TaskClass, reportText, StringComparison.Ordinal);
            Assert.Contains(timerAlert.GetProperty("id").GetString()!, reportText, StringComparison.Ordinal);
            var reportList = await api.GetFromJsonAsync<JsonElement>("/api/reports?jvm=" + Uri.EscapeDataString(leakId));
            var report = Assert.Single(reportList.EnumerateArray());
            var reportId = report.GetProperty("id").GetString()!;
            Assert.Equal(leakId, report.GetProperty("jvmId").GetString());
            Assert.Equal("rule:TimerRetainedFinalizable", report.GetProperty("trigger").GetString());
            Assert.Equal(timerAlert.GetProperty("id").GetString(), report.GetProperty("alertId").GetString());
            Assert.Contains("/reports/" + reportId, reportText, StringComparison.Ordinal);
            var reportJson = await api.GetFromJsonAsync<JsonElement>("/api/reports/" + reportId);
            var finding = reportJson.GetProperty("findings").EnumerateArray().First(f => f.GetProperty("kind").GetString() == "timer-retained-finalizable");
            Assert.Contains(StatementClass, finding.GetProperty("classes").EnumerateArray().Select(c => c.GetString()));
            Assert.Contains(TaskClass, finding.GetProperty("classes").EnumerateArray().Select(c => c.GetString()));
            using var html = await api.GetAsync("/reports/" + reportId);
            Assert.Equal(System.Net.HttpStatusCode.OK, html.StatusCode);
            var csp = html.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal); // no script, no network: the report holds JVM strings
            Assert.DoesNotContain("script-src", csp, StringComparison.Ordinal);
            Assert.Contains(StatementClass, await html.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await api.GetAsync("/reports/..%2F..%2Fetc%2Fpasswd")).StatusCode);
            JsonElement linked = default;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                linked = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all&jvm=" + Uri.EscapeDataString(leakId));
                return linked.EnumerateArray().Any(a => a.GetProperty("reportId").GetString() == reportId);
            }, TimeSpan.FromSeconds(10)), "the alert does not link to its report: " + linked);
            // The dump was deleted after triage; the command's progress is stored, from the aggregator's request on.
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));
            var states = await pipeline.Query.QueryAsync($"SELECT \"state\" FROM \"apm.command\" WHERE \"jvm_id\" = '{leakId}'");
            Assert.Equal(["requested", "accepted", "running", "running", "done"], states.Series.SelectMany(x => x.Values).Select(v => v[1].GetString()));

            // Every mail was delivered: the outbox is empty.
            Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(!Directory.EnumerateFiles(outbox.FullName, "*.json").Any()), TimeSpan.FromSeconds(10)));
            output.WriteLine($"mails: {string.Join(" | ", smtp.Messages.Select(m => m.Subject))}");
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
            outbox.Delete(true);
            reports.Delete(true);
            dumps.Delete(true);
        }
    }

    private static ReceivedMail? MailAbout(SmtpServer smtp, string subject, int pid) =>
        smtp.Messages.FirstOrDefault(m => m.Subject.Contains(subject, StringComparison.Ordinal) && m.Subject.Contains($"(pid {pid} ", StringComparison.Ordinal));

    private static async Task<string> JvmIdAsync(Pipeline pipeline, int pid)
    {
        string? id = null;
        Assert.True(await Pipeline.EventuallyAsync(async () =>
        {
            var r = await pipeline.Query.QueryAsync(string.Create(CultureInfo.InvariantCulture,
                $"SELECT last(\"pid\") AS \"pid\" FROM \"apm.jvm.info\" WHERE \"pid\" = {pid} AND time > now() - 5m GROUP BY \"jvm_id\""));
            id = r.Series.Select(s => s.Tags["jvm_id"]).FirstOrDefault(j => j.Split(':')[1] == pid.ToString(CultureInfo.InvariantCulture));
            return id != null;
        }, TimeSpan.FromSeconds(30)), $"JVM {pid} never reached InfluxDB");
        return id!;
    }

    private static List<AlertTransition> ReadAlertTopic(KafkaOptions kafka) =>
        ReadTopic(kafka, ApmTopics.Alerts).Select(v => AlertTransition.Parser.ParseFrom(v)).ToList();

    private static List<byte[]> ReadTopic(KafkaOptions kafka, string topic)
    {
        var config = kafka.CreateConsumerConfig("alert-test-" + Guid.NewGuid().ToString("N"));
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        config.EnablePartitionEof = true;
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        consumer.Subscribe(topic);
        var list = new List<byte[]>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var eofs = new HashSet<int>();
        while (DateTime.UtcNow < deadline)
        {
            var r = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (r is null) continue;
            if (r.IsPartitionEOF)
            {
                eofs.Add(r.Partition.Value);
                if (consumer.Assignment.Count > 0 && eofs.Count == consumer.Assignment.Count) break;
                continue;
            }

            list.Add(r.Message.Value);
        }

        consumer.Close();
        return list;
    }

    private static ChildProcess StartAggregatorProcess(Pipeline pipeline, int smtpPort, int apiPort, string outbox, string reports) =>
        ChildProcess.StartAggregator(pipeline, apiPort, new Dictionary<string, string>
        {
            ["Apm__Smtp__Host"] = SmtpServer.Host,
            ["Apm__Smtp__Port"] = smtpPort.ToString(CultureInfo.InvariantCulture),
            ["Apm__Smtp__From"] = "apm@example.test",
            ["Apm__Alerts__To"] = "oncall@example.test, second@example.test",
            ["Apm__Alerts__DashboardUrl"] = "http://127.0.0.1:5080",
            ["Apm__Alerts__OutboxDirectory"] = outbox,
            ["Apm__Reports__Directory"] = reports,
            ["Apm__DataDirectory"] = Path.GetDirectoryName(reports)!,
            // Only the CancelTimer alert asks for a dump here (the slow finalizer's would only cost time).
            ["Apm__Alerts__HeapDumpRules"] = "TimerRetainedFinalizable",
            ["Apm__Alerts__MailPollInterval"] = "00:00:01",
            ["Apm__Smtp__RetryBaseDelay"] = "00:00:01",
            ["Apm__Smtp__RetryMaxDelay"] = "00:00:02",
            ["Apm__Alerts__Lifecycle__ClearFor"] = "00:00:05",
            ["Apm__Rules__TimerRetainedFinalizable__Window"] = "00:00:30",
        });
}
