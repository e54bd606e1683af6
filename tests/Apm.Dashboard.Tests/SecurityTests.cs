using System.Net;
using System.Text.RegularExpressions;
using Apm.Server;
using Apm.Testing;

namespace Apm.Dashboard.Tests;

/// <summary>Users with hashed passwords, cookie login with antiforgery, and who may reach what.</summary>
public sealed partial class SecurityTests
{
    [Fact]
    public async Task With_users_configured_every_page_needs_a_login_that_checks_antiforgery_and_the_password()
    {
        await using var influx = await InfluxServer.StartAsync();
        using (var writer = new Apm.Influx.InfluxWriter(influx.Options("apm"))) await writer.EnsureDatabaseAsync();
        await using var host = await DashboardHost.StartAsync(influx.Options("apm"), new Dictionary<string, string?>
        {
            ["Apm:Auth:Users:alice"] = PasswordHasher.Hash("correct horse"),
        });
        var client = host.Client;

        // Pages redirect to the login page; the JSON API and the scripts' requests (event stream, fleet rows) answer 401;
        // assets stay reachable.
        using (var page = await client.GetAsync(new Uri("alerts?state=all", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
            Assert.Equal("/login?returnUrl=%2Falerts%3Fstate%3Dall", page.Headers.Location!.OriginalString);
        }

        using (var api = await client.GetAsync(new Uri("api/jvms", UriKind.Relative))) Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        using (var sse = await client.GetAsync(new Uri("dashboard/events", UriKind.Relative))) Assert.Equal(HttpStatusCode.Unauthorized, sse.StatusCode);
        using (var rows = await client.GetAsync(new Uri("dashboard/fleet-rows", UriKind.Relative))) Assert.Equal(HttpStatusCode.Unauthorized, rows.StatusCode);
        using (var css = await client.GetAsync(new Uri("_apm/app.css", UriKind.Relative))) Assert.Equal(HttpStatusCode.OK, css.StatusCode);

        // A login post without the form's antiforgery token is refused.
        using (var forged = await client.PostAsync(new Uri("account/login", UriKind.Relative), Forms.Encoded(("username", "alice"), ("password", "correct horse"), ("returnUrl", "/"))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }

        // The real form: a wrong password goes back to the form; the right one signs in and returns where asked.
        var token = await Forms.TokenAsync(client);
        using (var wrong = await client.PostAsync(new Uri("account/login", UriKind.Relative), Forms.Encoded(("__RequestVerificationToken", token), ("username", "alice"), ("password", "wrong"), ("returnUrl", "/alerts"))))
        {
            Assert.Equal(HttpStatusCode.Redirect, wrong.StatusCode);
            Assert.StartsWith("/login?failed=1", wrong.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }

        // An absolute or protocol-relative return address is not followed (no open redirect).
        using (var ok = await client.PostAsync(new Uri("account/login", UriKind.Relative), Forms.Encoded(("__RequestVerificationToken", token), ("username", "alice"), ("password", "correct horse"), ("returnUrl", "//evil.example/"))))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            Assert.Equal("/", ok.Headers.Location!.OriginalString);
        }

        using (var page = await client.GetAsync(new Uri("alerts", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("Sign out", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var api = await client.GetAsync(new Uri("api/jvms", UriKind.Relative))) Assert.Equal(HttpStatusCode.OK, api.StatusCode);
        using (var rows = await client.GetAsync(new Uri("dashboard/fleet-rows", UriKind.Relative))) Assert.Equal(HttpStatusCode.OK, rows.StatusCode);

        // Signing out needs the token too, and ends the session.
        var logoutToken = await Forms.TokenAsync(client, "alerts");
        using (var bye = await client.PostAsync(new Uri("account/logout", UriKind.Relative), Forms.Encoded(("__RequestVerificationToken", logoutToken)))) Assert.Equal(HttpStatusCode.Redirect, bye.StatusCode);
        using (var after = await client.GetAsync(new Uri("alerts", UriKind.Relative))) Assert.Equal(HttpStatusCode.Redirect, after.StatusCode);
    }

    [Fact]
    public void Password_hashes_are_salted_and_verify_only_the_right_password()
    {
        var a = PasswordHasher.Hash("s3cret");
        var b = PasswordHasher.Hash("s3cret");
        Assert.NotEqual(a, b);
        Assert.StartsWith("pbkdf2-sha256$100000$", a, StringComparison.Ordinal);
        Assert.True(PasswordHasher.Verify("s3cret", a));
        Assert.False(PasswordHasher.Verify("s3cret ", a));
        // The one-line Python recipe of docs/dashboard.md (hashlib.pbkdf2_hmac, salt bytes 0..15) gives a hash that verifies.
        Assert.True(PasswordHasher.Verify("s3cret", "pbkdf2-sha256$100000$AAECAwQFBgcICQoLDA0ODw==$6U2EW/k6Sy/5ligOTXKecYKNVjLiM5/y5czwAJT1x6E="));
        foreach (var broken in new[] { "", "s3cret", "pbkdf2-sha256$1$AAAA$AAAA", "pbkdf2-sha256$100000$%%%$AAAA", "md5$1$2$3" })
        {
            Assert.False(PasswordHasher.Verify("s3cret", broken));
        }
    }

    [Fact]
    public void Listening_beyond_loopback_is_allowed_only_with_users_or_an_api_key()
    {
        string[] urls = ["http://0.0.0.0:5080"];
        Assert.Equal("http://0.0.0.0:5080", ServerExtensions.FindUnsafeAddress(urls, new AuthOptions()));
        Assert.Null(ServerExtensions.FindUnsafeAddress(urls, new AuthOptions { Users = { ["alice"] = PasswordHasher.Hash("x") } }));
        Assert.Null(ServerExtensions.FindUnsafeAddress(urls, new AuthOptions { ApiKey = "k" }));
        Assert.Null(ServerExtensions.FindUnsafeAddress(["http://127.0.0.1:5080"], new AuthOptions()));
    }

    [Fact]
    public void With_only_an_api_key_the_pages_answer_loopback_clients_and_the_api_everyone()
    {
        var keyOnly = new AuthOptions { ApiKey = "k" };
        var remote = System.Net.IPAddress.Parse("192.0.2.10");
        Assert.False(DashboardExtensions.IsDashboardReachable("/", remote, keyOnly));
        Assert.False(DashboardExtensions.IsDashboardReachable("/dashboard/events", remote, keyOnly));
        Assert.True(DashboardExtensions.IsDashboardReachable("/api/jvms", remote, keyOnly));
        Assert.True(DashboardExtensions.IsDashboardReachable("/healthz", remote, keyOnly));
        Assert.True(DashboardExtensions.IsDashboardReachable("/", System.Net.IPAddress.Loopback, keyOnly));
        Assert.True(DashboardExtensions.IsDashboardReachable("/", System.Net.IPAddress.Parse("::ffff:127.0.0.1"), keyOnly));
        Assert.True(DashboardExtensions.IsDashboardReachable("/", remote, new AuthOptions { ApiKey = "k", Users = { ["a"] = "h" } }));
    }

    [Fact]
    public async Task Without_authentication_a_cross_site_shaped_request_cannot_change_anything_and_the_documented_header_can()
    {
        await using var influx = await InfluxServer.StartAsync();
        var options = influx.Options("apm");
        using (var writer = new Apm.Influx.InfluxWriter(options))
        {
            await writer.EnsureDatabaseAsync();
            var lines = new Apm.Influx.LineProtocolBuilder();
            lines.Measurement("apm.jvm.info").Tag("host", "csrf-host").Tag("jvm_id", Jvm).Field("status", "live").Field("pid", 7L).Timestamp(DateTimeOffset.UtcNow);
            await writer.WriteAsync(lines);
        }

        using var cluster = Apm.Kafka.EmbeddedKafkaCluster.Start(1);
        Apm.Kafka.TopicAdmin.EnsureTopics(cluster, [Apm.Kafka.ApmTopics.Commands], partitions: 1);
        using var sender = new TopicCommandSender(new Apm.Kafka.KafkaOptions { BootstrapServers = cluster.BootstrapServers });
        var store = Directory.CreateTempSubdirectory("apm-csrf-").FullName;
        await using var host = await DashboardHost.StartAsync(options, new Dictionary<string, string?> { ["Apm:Reports:Directory"] = store },
            s => Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<ICommandSender>(s, sender));
        var client = host.Client;
        var dump = new Uri($"api/jvms/{Uri.EscapeDataString(Jvm)}/heap-dump", UriKind.Relative);

        // What a page of another site can send without a preflight: a form post (urlencoded, multipart or plain text).
        foreach (var body in new HttpContent[] { Forms.Encoded(("all", "true")), new StringContent("x"), new MultipartFormDataContent { { new StringContent("x"), "x" } } })
        {
            using var forged = new HttpRequestMessage(HttpMethod.Post, dump) { Content = body, Headers = { { "Origin", "https://evil.example" } } };
            using var refused = await client.SendAsync(forged);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("X-Apm-Request", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));
        }

        using (var upload = new HttpRequestMessage(HttpMethod.Post, new Uri("api/reports/upload?name=x.hprof", UriKind.Relative)) { Content = new ByteArrayContent("JAVA PROFILE 1.0.2"u8.ToArray()) })
        using (var refused = await client.SendAsync(upload))
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        // The preflight that adding the header would need is never granted.
        using (var preflight = new HttpRequestMessage(HttpMethod.Options, dump)
        {
            Headers = { { "Origin", "https://evil.example" }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", "x-apm-request" } },
        })
        using (var answer = await client.SendAsync(preflight))
        {
            Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
            Assert.False(answer.Headers.Contains("Access-Control-Allow-Headers"));
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(store));

        // The documented request: the header (or a JSON body) marks it as not cross-site.
        using (var documented = new HttpRequestMessage(HttpMethod.Post, dump) { Headers = { { "X-Apm-Request", "1" } } })
        using (var accepted = await client.SendAsync(documented))
        {
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            Assert.StartsWith("/api/commands/", accepted.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }

        using (var json = await client.PostAsync(dump, new StringContent("{}", System.Text.Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.Accepted, json.StatusCode);
        using (var upload = new HttpRequestMessage(HttpMethod.Post, new Uri("api/reports/upload?name=x.hprof", UriKind.Relative))
        {
            Content = new ByteArrayContent("not a heap dump at all"u8.ToArray()),
            Headers = { { "X-Apm-Request", "1" } },
        })
        using (var checkedUpload = await client.SendAsync(upload))
            Assert.Equal(HttpStatusCode.BadRequest, checkedUpload.StatusCode); // past the guard, refused by the HPROF check

        // Reads stay open to simple requests.
        using (var read = await client.GetAsync(new Uri("api/commands?jvm=" + Uri.EscapeDataString(Jvm), UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(2, System.Text.Json.JsonDocument.Parse(await read.Content.ReadAsStringAsync()).RootElement.GetArrayLength());
        }

        Directory.Delete(store, true);
    }

    [Fact]
    public async Task A_request_with_the_api_key_needs_no_other_header()
    {
        await using var influx = await InfluxServer.StartAsync();
        var options = influx.Options("apm");
        using (var writer = new Apm.Influx.InfluxWriter(options)) await writer.EnsureDatabaseAsync();
        var store = Directory.CreateTempSubdirectory("apm-csrf-key-").FullName;
        await using var host = await DashboardHost.StartAsync(options, new Dictionary<string, string?> { ["Apm:Reports:Directory"] = store, ["Apm:Auth:ApiKey"] = "k3y" });
        HttpRequestMessage Upload(string? key)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri("api/reports/upload", UriKind.Relative)) { Content = new ByteArrayContent("not a heap dump at all"u8.ToArray()) };
            if (key is not null) request.Headers.Add("X-Api-Key", key);
            return request;
        }

        using (var anonymous = await host.Client.SendAsync(Upload(null))) Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using (var keyed = await host.Client.SendAsync(Upload("k3y"))) Assert.Equal(HttpStatusCode.BadRequest, keyed.StatusCode); // reached the upload's own checks
        Directory.Delete(store, true);
    }

    private const string Jvm = "csrf-host:7:1";
}
