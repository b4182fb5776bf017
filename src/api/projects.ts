// /v1/projects: tenancy roots, their quotas and their members.
import { Type } from 'typebox';
import { requireClusterAdmin, requireUser } from '../services/access.ts';
import * as projects from '../services/projects.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf, parseSelector } from './paging.ts';
import { presentProject } from './present.ts';
import {
  ListQuery,
  Member,
  MemberParam,
  MemberPut,
  Page,
  Project,
  ProjectCreate,
  ProjectParam,
  ProjectPatch,
} from '../model/schemas.ts';

const tags = ['projects'];

export function projectRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/projects',
    {
      schema: {
        tags,
        summary: 'List the projects you can see',
        querystring: ListQuery,
        response: { 200: Page(Project) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const labels = parseSelector(req.query.labels);
      const { rows, nextCursor } = pageOf(await projects.list(store, p, { limit, after, labels }), limit);
      return { items: rows.map(presentProject), nextCursor };
    },
  );

  app.post(
    '/projects',
    { schema: { tags, summary: 'Create a project (cluster admins)', body: ProjectCreate, response: { 201: Project } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      const row = await projects.create(store, p, req.body);
      return reply.code(201).send(presentProject(row));
    },
  );

  app.get(
    '/projects/:project',
    { schema: { tags, summary: 'Show a project', params: ProjectParam, response: { 200: Project } } },
    async req => {
      const p = requireUser(principalOf(req));
      return presentProject(await projects.show(store, p, req.params.project));
    },
  );

  app.patch(
    '/projects/:project',
    {
      schema: {
        tags,
        summary: 'Change a project (admins); quotas only by cluster admins',
        params: ProjectParam,
        body: ProjectPatch,
        response: { 200: Project },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return presentProject(await projects.update(store, p, req.params.project, req.body));
    },
  );

  app.delete(
    '/projects/:project',
    {
      schema: {
        tags,
        summary: 'Delete an empty project (cluster admins)',
        params: ProjectParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await projects.remove(store, p, req.params.project);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/projects/:project/members',
    {
      schema: {
        tags,
        summary: 'List the members of a project',
        params: ProjectParam,
        response: { 200: Type.Object({ items: Type.Array(Member) }) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return { items: await projects.members(store, p, req.params.project) };
    },
  );

  app.put(
    '/projects/:project/members/:user',
    {
      schema: {
        tags,
        summary: "Set a user's role in a project (project admins)",
        params: MemberParam,
        body: MemberPut,
        response: { 200: Member },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return projects.setMember(store, p, req.params.project, req.params.user, req.body.role);
    },
  );

  app.delete(
    '/projects/:project/members/:user',
    {
      schema: {
        tags,
        summary: 'Remove a user from a project (project admins)',
        params: MemberParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await projects.removeMember(store, p, req.params.project, req.params.user);
      return reply.code(204).send(null);
    },
  );
}
