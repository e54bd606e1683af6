using System.Net;
using Apm.Dashboard;
using Apm.Influx;
using Apm.Server;
using Apm.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Apm.Dashboard.Tests;

/// <summary>
/// The API and the dashboard hosted the way src/Apm.Cli hosts them (WebApplication.CreateBuilder, Production
/// environment, Kestrel on a free 127.0.0.1 port), over a real influxd.
/// </summary>
public sealed class DashboardHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private DashboardHost(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        Client = NewClient();
    }

    public Uri BaseAddress { get; }

    /// <summary>A client that does not follow redirects (tests look at them).</summary>
    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<DashboardHost> StartAsync(InfluxOptions influx, IDictionary<string, string?>? settings = null,
        Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null)
    {
        var port = FreePort.Next();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production, ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var config = new Dictionary<string, string?> { ["Apm:Dashboard:PollInterval"] = "00:00:00.500" };
        if (settings != null)
        {
            foreach (var (k, v) in settings) config[k] = v;
        }

        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Services.AddApmApi(builder.Configuration, influx);
        builder.Services.AddApmDashboard(builder.Configuration);
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseApmApi();
        app.UseApmDashboard();
        await app.StartAsync();
        return new DashboardHost(app, new Uri($"http://127.0.0.1:{port}/"));
    }

    public HttpClient NewClient(CookieContainer? cookies = null) =>
        new(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies ?? new CookieContainer(), UseCookies = true })
        {
            BaseAddress = BaseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
