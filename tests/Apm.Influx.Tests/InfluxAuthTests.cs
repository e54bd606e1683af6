using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Apm.Influx;

namespace Apm.Influx.Tests;

/// <summary>
/// A real influxd with authentication on: an admin creates the database and a user with rights on it only, as an
/// operator of a shared InfluxDB would. Apm then runs with that user's credentials.
/// </summary>
public sealed class InfluxAuthTests
{
    private const string AdminPassword = "adm-9f8e7d";
    private const string WriterPassword = "wr1ter-S3cret-5a4b";

    [Fact]
    public async Task A_user_without_admin_rights_writes_and_reads_an_existing_database_and_gets_clear_errors_otherwise()
    {
        var dir = Directory.CreateTempSubdirectory("apm-influx-auth-");
        await using var server = await LocalInfluxServer.StartAsync(dir.FullName);
        try
        {
            await server.StopAsync();
            var config = await File.ReadAllTextAsync(server.ConfigPath);
            Assert.Contains("auth-enabled = false", config, StringComparison.Ordinal);
            await File.WriteAllTextAsync(server.ConfigPath, config.Replace("auth-enabled = false", "auth-enabled = true", StringComparison.Ordinal));
            await server.StartAgainAsync();

            using var http = new HttpClient { BaseAddress = server.Url };
            // With no user yet, influxd lets anyone create the first admin; from then on it wants credentials.
            await AdminAsync(http, null, $"CREATE USER \"root\" WITH PASSWORD '{AdminPassword}' WITH ALL PRIVILEGES");
            await AdminAsync(http, AdminPassword, "CREATE DATABASE \"apm\"");
            await AdminAsync(http, AdminPassword, $"CREATE USER \"apm_writer\" WITH PASSWORD '{WriterPassword}'");
            await AdminAsync(http, AdminPassword, "GRANT ALL ON \"apm\" TO \"apm_writer\"");

            // The writer may not CREATE DATABASE; the database exists, so setting up succeeds and writes and reads work.
            var options = new InfluxOptions { Url = server.Url, Database = "apm", Username = "apm_writer", Password = WriterPassword };
            using (var writer = new InfluxWriter(options))
            using (var query = new InfluxQueryClient(options))
            {
                await writer.EnsureDatabaseAsync();
                var lp = new LineProtocolBuilder();
                lp.Measurement("jvm.memory.used").Tag("jvm_id", "j1").Field("value", 42.0).Timestamp(1_700_000_000_000_000_000);
                await writer.WriteAsync(lp);
                var read = await query.QueryAsync("SELECT \"value\" FROM \"jvm.memory.used\"");
                Assert.Equal(42.0, Assert.Single(read.Series).GetDouble(0, "value"));
            }

            // A database that does not exist and may not be created: the message says so and what to do.
            using (var writer = new InfluxWriter(new InfluxOptions { Url = server.Url, Database = "apm_missing", Username = "apm_writer", Password = WriterPassword }))
            {
                var ex = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.EnsureDatabaseAsync());
                Assert.Contains("does not exist or this user has no rights on it", ex.Message, StringComparison.Ordinal);
                Assert.Contains("CREATE DATABASE \"apm_missing\"", ex.Message, StringComparison.Ordinal);
                Assert.DoesNotContain(WriterPassword, ex.ToString(), StringComparison.Ordinal);
            }

            // A wrong password: refused at once with a message about the credentials, which never contains a password.
            const string wrong = "not-the-password-77";
            var badOptions = new InfluxOptions { Url = server.Url, Database = "apm", Username = "apm_writer", Password = wrong };
            using (var writer = new InfluxWriter(badOptions))
            {
                var ex = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.EnsureDatabaseAsync());
                Assert.Contains("credentials", ex.Message, StringComparison.Ordinal);
                Assert.DoesNotContain(wrong, ex.ToString(), StringComparison.Ordinal);
                Assert.DoesNotContain(wrong, badOptions.ToString(), StringComparison.Ordinal);
            }

            // Without credentials at all, a write is refused with the reason (not retried forever).
            using (var anonymous = new InfluxWriter(new InfluxOptions { Url = server.Url, Database = "apm", MaxRetries = 1 }))
            {
                var lp = new LineProtocolBuilder();
                lp.Measurement("m").Field("v", 1.0).Timestamp(1);
                var ex = await Assert.ThrowsAsync<InfluxWriteException>(() => anonymous.WriteAsync(lp));
                Assert.Equal(HttpStatusCode.Unauthorized, ex.StatusCode);
            }
        }
        finally
        {
            await server.StopAsync();
            dir.Delete(recursive: true);
        }
    }

    private static async Task AdminAsync(HttpClient http, string? password, string statement)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "query") { Content = new FormUrlEncodedContent([new("q", statement)]) };
        if (password is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("root:" + password)));
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode && !body.Contains("\"error\"", StringComparison.Ordinal), statement + " failed: " + body);
    }
}
