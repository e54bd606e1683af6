using System.Net;
using System.Net.Http.Headers;
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
}
