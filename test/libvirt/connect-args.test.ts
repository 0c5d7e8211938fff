// virsh-style connection choice: --connect URI on the command line, and the URIs blockcopy accepts.
import { describe, expect, it } from 'vitest';
import { parseConnectUri } from '../../adapters/libvirt/uri.js';
import { parseCommand } from '../../src/cli/args.js';

describe('--connect', () => {
  it('selects libvirt at the URI, for the named domain', () => {
    const c = parseCommand([
      'copy',
      'vda',
      '/i/c.qcow2',
      '--connect',
      'qemu:///system',
      '--domain',
      'web1',
    ])._unsafeUnwrap();
    expect(c).toMatchObject({ command: 'copy', connect: 'qemu:///system', domain: 'web1', disk: 'vda' });
  });

  it('needs --domain and excludes --hypervisor', () => {
    expect(parseCommand(['copy', 'vda', '/c', '--connect', 'qemu:///system'])._unsafeUnwrapErr().error.message).toBe(
      '--connect needs --domain NAME',
    );
    expect(
      parseCommand([
        'copy',
        'vda',
        '/c',
        '--connect',
        'qemu:///system',
        '--domain',
        'd',
        '--hypervisor',
        'sim',
      ])._unsafeUnwrapErr().error.message,
    ).toBe('--connect and --hypervisor are mutually exclusive');
  });

  it('without --connect or --hypervisor names no hypervisor (main then asks for one)', () => {
    expect(parseCommand(['copy', 'vda', '/c'])._unsafeUnwrap()).toMatchObject({
      hypervisor: undefined,
      connect: undefined,
    });
  });
});

describe('parseConnectUri', () => {
  it('qemu:///system uses libvirtd’s socket; qemu+unix names another', () => {
    expect(parseConnectUri('qemu:///system')._unsafeUnwrap()).toEqual({
      socket: '/var/run/libvirt/libvirt-sock',
      openUri: 'qemu:///system',
    });
    expect(parseConnectUri('qemu+unix:///system?socket=/run/libvirt/virtqemud-sock')._unsafeUnwrap()).toEqual({
      socket: '/run/libvirt/virtqemud-sock',
      openUri: 'qemu:///system',
    });
  });

  it.each([
    ['qemu+ssh://host/system', /unsupported transport 'ssh'/],
    ['qemu://host/system', /remote host 'host'/],
    ['xen:///system', /unsupported driver 'xen'/],
    ['qemu+unix:///system?socket=rel/sock', /must be an absolute path/],
    ['qemu:///system?keyfile=/k', /unsupported URI parameter 'keyfile'/],
    ['not a uri', /invalid connection URI/],
  ])('refuses %s', (uri, why) => {
    expect(parseConnectUri(uri)._unsafeUnwrapErr()).toMatch(why);
  });
});
