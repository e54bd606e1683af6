using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Apm.Influx;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Server;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Apm.Dashboard.Tests;

/// <summary>The dashboard's two action forms: "capture heap dump" on the JVM page and the reports page's upload.</summary>
public sealed partial class FormTests(SeededInflux seed) : IClassFixture<SeededInflux>
{
    [Fact]
    public async Task The_heap_dump_form_needs_its_token_and_the_confirmation_and_then_sends_the_command_to_the_collectors()
    {
        using var cluster = EmbeddedKafkaCluster.Start(1);
        TopicAdmin.EnsureTopics(cluster, [ApmTopics.Commands], partitions: 1);
        var kafka = new KafkaOptions { BootstrapServers = cluster.BootstrapServers };
        using var sender = new TopicCommandSender(kafka);
        const string jvm = "forms-host:4242:1";
        var lines = new LineProtocolBuilder();
        lines.Measurement("apm.jvm.info").Tag("host", "forms-host").Tag("jvm_id", jvm).Field("status", "live").Field("pid", 4242L).Field("main_class", "com.example.Forms").Timestamp(DateTimeOffset.UtcNow);
        using (var writer = new InfluxWriter(seed.Options)) await writer.WriteAsync(lines.ToString());
        await using var host = await DashboardHost.StartAsync(seed.Options, services: s => s.AddSingleton<ICommandSender>(sender));
        var client = host.NewClient();
        var page = "jvm?id=" + Uri.EscapeDataString(jvm);
        var token = await Forms.TokenAsync(client, page, "jvm/heap-dump");

        using (var noToken = await client.PostAsync(new Uri("jvm/heap-dump", UriKind.Relative), Forms.Encoded(("id", jvm), ("confirm", "yes"))))
            Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        using (var unconfirmed = await client.PostAsync(new Uri("jvm/heap-dump", UriKind.Relative), Forms.Encoded(("__RequestVerificationToken", token), ("id", jvm))))
        {
            Assert.Equal(HttpStatusCode.Redirect, unconfirmed.StatusCode);
            Assert.Contains("dumpError=", unconfirmed.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }

        using var ok = await client.PostAsync(new Uri("jvm/heap-dump", UriKind.Relative), Forms.Encoded(("__RequestVerificationToken", token), ("id", jvm), ("confirm", "yes")));
        Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        var commandId = Regex.Match(ok.Headers.Location!.OriginalString, "dump=([0-9a-f]{32})").Groups[1].Value;
        Assert.NotEmpty(commandId);
        var shown = await client.GetStringAsync(new Uri(ok.Headers.Location.OriginalString.TrimStart('/'), UriKind.Relative));
        Assert.Contains(commandId, shown, StringComparison.Ordinal);
        // The JVM page lists the command at once (the API recorded it as requested).
        var row = Parser.ParseDocument(shown).QuerySelector($"table.commands tr[data-command-id='{commandId}']");
        Assert.NotNull(row);
        Assert.Equal("requested", row.QuerySelector("td.command-state")!.TextContent.Trim());
        Assert.Contains("dashboard", row.TextContent, StringComparison.Ordinal);

        // The command is on the topic for the JVM's host, from the dashboard, expiring in the future.
        var config = kafka.CreateConsumerConfig("forms-test");
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        consumer.Subscribe(ApmTopics.Commands);
        var r = consumer.Consume(TimeSpan.FromSeconds(30));
        Assert.NotNull(r);
        var command = CollectorCommand.Parser.ParseFrom(r.Message.Value);
        Assert.Equal(commandId, command.CommandId);
        Assert.Equal("forms-host", command.TargetHost);
        Assert.Equal(jvm, command.JvmId);
        Assert.Equal("dashboard", command.Trigger);
        Assert.False(command.HeapDump.AllObjects);
        Assert.True(command.ExpiresUnixMs > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        consumer.Close();

        // The collector's answer (as the aggregator stores it) appears on the page: the refusal's kind and its reason, encoded.
        var results = new LineProtocolBuilder();
        var t = DateTimeOffset.UtcNow;
        foreach (var (state, failure, reason, at) in new[] { ("accepted", "", "", t), ("failed", "disk-full", HostileReason, t.AddSeconds(1)) })
        {
            results.Measurement("apm.command").Tag("command_id", commandId).Tag("host", "forms-host").Tag("jvm_id", jvm)
                .Field("state", state).Field("reason", reason).Field("failure", failure).Field("report_id", "").Field("trigger", "dashboard").Field("alert_id", "").Timestamp(at);
        }

        using (var writer = new InfluxWriter(seed.Options)) await writer.WriteAsync(results.ToString());
        var html = await client.GetStringAsync(new Uri(page, UriKind.Relative));
        Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
        row = Parser.ParseDocument(html).QuerySelector($"table.commands tr[data-command-id='{commandId}']")!;
        Assert.Equal("failed (disk-full)", row.QuerySelector("td.command-state")!.TextContent.Trim());
        Assert.Equal(HostileReason, row.QuerySelector("td.command-reason")!.TextContent.Trim());
    }

    private const string HostileReason = "free space 10 MB below 1 GB on <img src=x onerror=alert(1)>";

    private static readonly AngleSharp.Html.Parser.HtmlParser Parser = new();

    [Fact]
    public async Task The_upload_form_needs_its_token_and_refuses_a_file_that_is_not_a_heap_dump_with_the_reason()
    {
        await using var host = await DashboardHost.StartAsync(seed.Options, new Dictionary<string, string?> { ["Apm:Reports:Directory"] = seed.ReportsDirectory });
        var client = host.NewClient();
        var token = await Forms.TokenAsync(client, "reports", "reports/upload");

        MultipartFormDataContent Upload(bool withToken)
        {
            var form = new MultipartFormDataContent();
            if (withToken) form.Add(new StringContent(token), "__RequestVerificationToken");
            var file = new ByteArrayContent("this is not a heap dump, just text"u8.ToArray());
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "dump", "../../notes.hprof");
            return form;
        }

        using (var noToken = await client.PostAsync(new Uri("reports/upload", UriKind.Relative), Upload(false)))
            Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        int Reports() => Directory.EnumerateDirectories(seed.ReportsDirectory).Count(d => !Path.GetFileName(d).StartsWith('.'));
        var before = Reports();
        using var refused = await client.PostAsync(new Uri("reports/upload", UriKind.Relative), Upload(true));
        Assert.Equal(HttpStatusCode.Redirect, refused.StatusCode);
        var location = refused.Headers.Location!.OriginalString;
        Assert.Contains("uploadError=", location, StringComparison.Ordinal);
        var shown = await client.GetStringAsync(new Uri(location.TrimStart('/'), UriKind.Relative));
        Assert.Contains("not an HPROF heap dump", WebUtility.HtmlDecode(shown), StringComparison.Ordinal);
        // Nothing was kept: no report, no leftover upload.
        Assert.Equal(before, Reports());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(seed.ReportsDirectory, ".uploads")));
    }

    [Fact]
    public async Task The_upload_form_streams_the_file_into_the_store_as_it_arrives_and_refuses_it_past_the_limit()
    {
        var store = Directory.CreateTempSubdirectory("apm-form-upload-").FullName;
        const int Limit = 1 << 20;
        await using var host = await DashboardHost.StartAsync(seed.Options, new Dictionary<string, string?>
        {
            ["Apm:Reports:Directory"] = store,
            ["Apm:Reports:MaxUploadBytes"] = Limit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var client = host.NewClient();
        var token = await Forms.TokenAsync(client, "reports", "reports/upload");

        // The form as a browser sends it (token first, then the file), without a length; the file exceeds the limit.
        const string Boundary = "apm-test-boundary";
        var head = Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Disposition: form-data; name=\"__RequestVerificationToken\"\r\n\r\n{token}\r\n" +
            $"--{Boundary}\r\nContent-Disposition: form-data; name=\"dump\"; filename=\"big.hprof\"\r\nContent-Type: application/octet-stream\r\n\r\nJAVA PROFILE 1.0.2\0");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var content = new PausedContent([.. head, .. new byte[300 * 1024]], [.. new byte[Limit], .. Encoding.ASCII.GetBytes($"\r\n--{Boundary}--\r\n")], release.Task);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={Boundary}");
        var posting = client.PostAsync(new Uri("reports/upload", UriKind.Relative), content);

        // While the rest has not been sent, the first part is already on disk inside the store (not in a form buffer elsewhere).
        var uploads = Path.Combine(store, ".uploads");
        Assert.True(await EventuallyAsync(() => Directory.Exists(uploads) && Directory.EnumerateFiles(uploads).Any(f => new FileInfo(f).Length > 0), TimeSpan.FromSeconds(30)),
            "the upload did not stream into the store's .uploads directory");
        release.SetResult();

        using var refused = await posting;
        Assert.Equal(HttpStatusCode.Redirect, refused.StatusCode);
        var location = Uri.UnescapeDataString(refused.Headers.Location!.OriginalString);
        Assert.Contains("uploadError=the upload is larger than the limit of 1048576 bytes", location, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(uploads));
        Assert.Equal([".uploads"], Directory.EnumerateFileSystemEntries(store).Select(Path.GetFileName));
        Directory.Delete(store, true);
    }

    [Fact]
    public async Task An_uploaded_report_links_to_its_report_and_to_no_JVM()
    {
        var store = Directory.CreateTempSubdirectory("apm-upload-list-").FullName;
        var id = new string('e', 32);
        new Apm.Reports.ReportStore(store).Save(new Apm.Reports.ReportMeta(id, "upload", "", "prod-heap.hprof", DateTimeOffset.UtcNow, "upload:dashboard", "", "", "finding", 100), "{}"u8, "<p>r</p>"u8);
        await using var host = await DashboardHost.StartAsync(seed.Options, new Dictionary<string, string?> { ["Apm:Reports:Directory"] = store });
        var html = await host.Client.GetStringAsync(new Uri("reports", UriKind.Relative));
        var row = Parser.ParseDocument(html).QuerySelector($"tr[data-report-id='{id}']")!;
        Assert.Equal(["reports/" + id, "api/reports/" + id], row.QuerySelectorAll("a").Select(a => a.GetAttribute("href")));
        Assert.Contains("prod-heap.hprof", row.TextContent, StringComparison.Ordinal);
        Assert.DoesNotContain("jvm?id=", html, StringComparison.Ordinal);
        Directory.Delete(store, true);
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(100);
        }

        return true;
    }

    /// <summary>A request body of unknown length that sends <paramref name="first"/>, waits for <paramref name="resume"/>, then sends <paramref name="rest"/>.</summary>
    private sealed class PausedContent(byte[] first, byte[] rest, Task resume) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            await stream.WriteAsync(first);
            await stream.FlushAsync();
            await resume;
            await stream.WriteAsync(rest);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
